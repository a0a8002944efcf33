"""Synthetic CHAOS: CT patients (DICOM + 1-bit liver PNGs) and MR patients
(T2SPIR and T1DUAL DICOM + organ PNGs), in the challenge's folder layout.

Some CT patients have ImagePositionPatient z decreasing with the file index,
as in the real data, so pairing by position instead of by name misaligns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data.io.lazy import pydicom
from data.io.png import write_png, write_png_1bit
from data.sample.shapes import ellipsoid, texture

CT_PATIENTS = ("1", "2", "5", "6", "8", "10")
MR_PATIENTS = ("1", "2", "3", "5")
MR_GREY = (63, 126, 189, 252)  # liver, right kidney, left kidney, spleen


def write_chaos(out: Path, seed: int = 0, ct_patients: tuple[str, ...] = CT_PATIENTS,
                mr_patients: tuple[str, ...] = MR_PATIENTS, slices: int = 10, ct_size: int = 128,
                mr_size: int = 64, mr_slices: int = 8) -> Path:
    """Write `out/Train_Sets/{CT,MR}/<patient>/...`; returns `out`."""
    rng = np.random.default_rng(seed)
    for number, patient in enumerate(ct_patients):
        folder = out / "Train_Sets" / "CT" / patient
        write_ct_patient(folder, rng, patient, slices, ct_size,
                         z_decreasing=number % 2 == 1, img_names=number == 2)
    for patient in mr_patients:
        write_mr_patient(out / "Train_Sets" / "MR" / patient, rng, patient, mr_slices, mr_size)
    return out


def write_ct_patient(folder: Path, rng: np.random.Generator, patient: str, slices: int, size: int,
                     z_decreasing: bool = False, img_names: bool = False) -> None:
    """Abdomen-like HU slices with a contrast-enhanced liver whose outline changes along z."""
    (folder / "DICOM_anon").mkdir(parents=True, exist_ok=True)
    (folder / "Ground").mkdir(parents=True, exist_ok=True)
    spacing = 2.8 * 128 / size  # a 36 cm field of view, like the real 512 x 0.7 mm
    centre = np.array([size * 0.5, size * 0.42]) + rng.uniform(-0.04, 0.04, 2) * size
    peak = rng.uniform(0.3, 0.6) * (slices - 1)  # the liver is widest off-centre: z-order matters
    for k in range(slices):
        body = ellipsoid((size, size), (size * 0.5, size * 0.5), (size * 0.36, size * 0.45))
        hu = np.where(body, 40.0, -1000.0)
        hu[body & ~ellipsoid((size, size), (size * 0.5, size * 0.5), (size * 0.33, size * 0.42))] = -100.0
        hu[ellipsoid((size, size), (size * 0.72, size * 0.5), (size * 0.06, size * 0.06))] = 700.0  # spine
        extent = max(0.0, 1.0 - ((k - peak) / (0.55 * slices)) ** 2)
        liver = np.zeros((size, size), bool)
        if extent > 0.15:
            radii = size * np.array([0.17, 0.2]) * np.sqrt(extent)
            liver = ellipsoid((size, size), centre + [0.0, size * 0.01 * (k - peak)], radii, angle=0.4)
            hu[liver] = 150.0
        hu += texture((size, size), rng, 12.0, 1.5) * body + rng.normal(0, 10.0, (size, size))
        stored = np.clip(np.round(hu + 1024.0), 0, 4095).astype(np.uint16)
        z = -k * 3.0 if z_decreasing else k * 3.0
        name = f"IMG-0004-{k + 1:05d}.dcm" if img_names else f"i{k:04d},0000b.dcm"
        header = dicom_image(f"ct-{patient}", k, "CT", stored, [-180.0, -180.0, 100.0 + z], spacing, 3.0)
        header.RescaleIntercept = -1024
        header.RescaleSlope = 1
        header.RescaleType = "HU"
        header.WindowCenter, header.WindowWidth = 40, 400
        header.save_as(folder / "DICOM_anon" / name, enforce_file_format=True)
        write_png_1bit(folder / "Ground" / f"liver_GT_{k:03d}.png", liver)


def write_mr_patient(folder: Path, rng: np.random.Generator, patient: str, slices: int, size: int) -> None:
    """T2SPIR and T1DUAL (in/out phase) series with liver, kidneys and spleen."""
    organs = [  # (centre row, centre column, radius row, radius column) as fractions of size
        (0.45, 0.30, 0.18, 0.16),  # liver (image left = patient right)
        (0.62, 0.36, 0.07, 0.05),  # right kidney
        (0.62, 0.66, 0.07, 0.05),  # left kidney
        (0.42, 0.72, 0.09, 0.07),  # spleen
    ]
    # Per series, intensity of background body and of each organ.
    series = {
        "T2SPIR": (folder / "T2SPIR" / "DICOM_anon", 200.0, (350.0, 700.0, 700.0, 600.0)),
        "InPhase": (folder / "T1DUAL" / "DICOM_anon" / "InPhase", 300.0, (550.0, 250.0, 250.0, 400.0)),
        "OutPhase": (folder / "T1DUAL" / "DICOM_anon" / "OutPhase", 280.0, (500.0, 230.0, 230.0, 380.0)),
    }
    for path, *_ in series.values():
        path.mkdir(parents=True, exist_ok=True)
    (folder / "T2SPIR" / "Ground").mkdir(parents=True, exist_ok=True)
    (folder / "T1DUAL" / "Ground").mkdir(parents=True, exist_ok=True)
    jitter = rng.uniform(-0.03, 0.03, (4, 2))
    for k in range(slices):
        extent = max(0.0, 1.0 - ((k - (slices - 1) / 2) / (0.6 * slices)) ** 2)
        labels = np.zeros((size, size), np.uint8)
        for index, (row, column, radius_row, radius_column) in enumerate(organs, start=1):
            centre = (np.array([row, column]) + jitter[index - 1]) * size
            mask = ellipsoid((size, size), centre, np.array([radius_row, radius_column]) * size * np.sqrt(extent))
            labels[mask & (labels == 0)] = index
        body = ellipsoid((size, size), (size * 0.5, size * 0.5), (size * 0.4, size * 0.46))
        grey = np.zeros((size, size), np.uint8)
        for index, level in enumerate(MR_GREY, start=1):
            grey[labels == index] = level
        for name, (path, tissue, levels) in series.items():
            image = np.where(body, tissue, 5.0)
            for index, level in enumerate(levels, start=1):
                image[labels == index] = level
            image += texture((size, size), rng, 15.0, 1.0) * body + rng.normal(0, 8.0, (size, size))
            stored = np.clip(np.round(image), 0, 4095).astype(np.uint16)
            number = 2 * k + (1 if name == "OutPhase" else 2)
            header = dicom_image(f"mr-{patient}-{name}", k, "MR", stored, [-170.0, -170.0, 60.0 - 7.0 * k],
                            340.0 / size, 7.0)
            header.save_as(path / f"IMG-0002-{number:05d}.dcm", enforce_file_format=True)
        write_png(folder / "T2SPIR" / "Ground" / f"IMG-0002-{2 * k + 2:05d}.png", grey)
        write_png(folder / "T1DUAL" / "Ground" / f"IMG-0002-{2 * k + 2:05d}.png", grey)


def dicom_image(series: str, index: int, modality: str, pixels: np.ndarray, position: list[float],
                spacing: float, thickness: float) -> pydicom.Dataset:
    """A minimal but valid single-frame DICOM image with deterministic UIDs."""
    storage = pydicom.uid.CTImageStorage if modality == "CT" else pydicom.uid.MRImageStorage
    instance = pydicom.uid.generate_uid(entropy_srcs=["lwnas-sample", series, str(index)])
    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = storage
    meta.MediaStorageSOPInstanceUID = instance
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    header = pydicom.Dataset()
    header.file_meta = meta
    header.SOPClassUID = storage
    header.SOPInstanceUID = instance
    study = "-".join(series.split("-")[:2])
    header.StudyInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["lwnas-sample-study", study])
    header.SeriesInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["lwnas-sample-series", series])
    header.Modality = modality
    header.PatientID = series
    header.InstanceNumber = index + 1
    header.ImagePositionPatient = [float(v) for v in position]
    header.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    header.PixelSpacing = [round(spacing, 6), round(spacing, 6)]
    header.SliceThickness = thickness
    header.Rows, header.Columns = pixels.shape
    header.SamplesPerPixel = 1
    header.PhotometricInterpretation = "MONOCHROME2"
    header.BitsAllocated = 16
    header.BitsStored = 12
    header.HighBit = 11
    header.PixelRepresentation = 0
    header.PixelData = pixels.tobytes()
    return header
