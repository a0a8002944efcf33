"""Users' own data sets in the nnU-Net v2 raw or Medical Segmentation Decathlon layout: their
dataset.json (`spec`), cases read and checked (`reader`), served for training (`prepare`), the
fingerprint the plan is made from (`fingerprint`), the data set's adapter (`source`) and its
reader of new images (`inputs`).

The public names are re-exported by `data`; this file imports nothing, so that importing one
module here loads only what that module needs.
"""
