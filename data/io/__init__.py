"""Image files read and written: any ending nnU-Net reads to one canonical (C, *spatial) array
order with its geometry (`images`), NIfTI with one-line errors (`nifti`), PNG including
1-bit masks (`png`), DICOM series and the rule a folder must meet to be one volume (`dicom`).

Imports no other part of `data` but its errors. The public names are re-exported by `data`;
this file imports nothing, so importing one reader loads no other.
"""
