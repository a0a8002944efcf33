"""Array transforms: intensity normalisations (`intensity`), in-plane resizing and its inverse
(`resize`), 2D and 3D augmentation (`augment2d`, `augment3d`).

The public names are re-exported by `data`; this file imports nothing, so importing one
transform loads no other.
"""
