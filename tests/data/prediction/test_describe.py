"""What a checkpoint carries about its data (data.prediction.describe): the preprocessing and the
label map, JSON-ready, with the readers' effective options."""
import json

import data


def test_preprocessing_descriptions_are_json_ready_and_carry_the_readers_options():
    dataset = data.get_dataset("nnunet", split="train", augment=False)
    nnunet, labels = data.describe_dataset(dataset)
    assert json.loads(json.dumps(nnunet)) == nnunet
    assert set(nnunet["options"]["ct_intensities"]) == {"0"}  # planned from the training cases
    assert nnunet["options"]["ct_intensities"] == json.loads(json.dumps(dataset.options["ct_intensities"]))
    assert nnunet["normalisation"] == {"CT": "ct", "PET": "zscore"} and nnunet["slice_axis"] == "coarsest"
    assert labels == {"values": [0, 1, 2], "names": ["background", "liver", "spleen"], "activation": "softmax",
                      "decision": "argmax"}
    chaos = data.preprocessing_spec("chaos", image_size=64)
    assert chaos["mean"] == data.get_preset("chaos").mean and chaos["steps"][-1] == "(x - 0.3667) / 0.3533"
    assert chaos["options"]["hu_window"] == [-1024.0, 1024.0] and chaos["slice_axis"] == "files"
    assert data.label_spec("chaos", modality="MR")["names"] == ["background", "liver", "right kidney",
                                                                 "left kidney", "spleen"]
    assert data.check_preprocessing(chaos, "x") == [] and data.check_label_map(labels, "x") == []
