"""The evaluation wing: every benchmark, data-set loader, metric and baseline of ``sketchsearch bench``.

The product (``engine``'s other modules and the app's windows) never imports it; it imports the product.
``run`` dispatches the parts; ``report`` prints their tables; ``datasets``, ``metrics`` and ``baselines`` serve them.
"""
