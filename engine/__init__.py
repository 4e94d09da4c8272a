"""sketchsearch engine: edge maps, asymmetric feature maps, shift-scored sketch search (no Qt).

Typical use::

    from engine.indexer import index_folders
    from engine.collection import SketchIndex

    index_folders(["~/Pictures"], "my-index")
    for hit in SketchIndex("my-index").search("sketch.png", top_k=10):
        print(hit.score, hit.box, hit.path)
"""

__version__ = "0.1.0"
