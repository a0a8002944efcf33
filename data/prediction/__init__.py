"""A trained network given new images: how its data set's new images are found and read
(`inputs`, through each data set's reader in the registry `data.sources`), its outputs turned
into label values (`label_maps`; BraTS' own conventions in `brats`), the predictions written
back in each input's geometry and format (`outputs`), and the descriptions a checkpoint
carries so that prediction needs nothing else (`describe`).

The public names are re-exported by `data`; this file imports nothing, so that the registry and
the data sets' modules can use the label maps and outputs without loading `inputs`, which loads
the registry (an import cycle otherwise).
"""
