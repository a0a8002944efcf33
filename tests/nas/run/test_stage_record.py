"""A stage's record: settings compared by name, written atomically, read back."""
import pytest

from nas.run.stage_record import UNSET, StageRecord, changed_settings, digest, read_record, write_record


def test_changed_settings_name_each_difference_old_to_new():
    recorded = {"--epochs": 2, "--layout": "1/1/1", "--device": "cpu", "--option": {"modality": "CT"}}
    wanted = {"--epochs": 3, "--layout": "1/1/1", "--device": "cuda", "--option": {"modality": "MR"},
              "--lr": 0.01}
    assert changed_settings(recorded, wanted, allowed=("--device",)) == [
        "--epochs: 2 -> 3", f"--lr: {UNSET} -> 0.01", '--option.modality: "CT" -> "MR"']


def test_a_tuple_equals_the_list_a_record_holds():
    assert changed_settings({"--crop-size": [32, 32, 32]}, {"--crop-size": (32, 32, 32)}) == []
    assert changed_settings({"--crop-size": None}, {}) == []  # absent is unset


def test_a_record_reads_back_and_a_foreign_file_is_refused(tmp_path):
    record = StageRecord("search", {"--search-epochs": 2}, {"plan/splits.json": "ab"}, ("search/choice.json",),
                         True, 1.5, {"chosen": "seed_0"})
    write_record(tmp_path, record)
    assert read_record(tmp_path, "search") == record
    assert read_record(tmp_path, "plan") is None
    assert record.missing_outputs(tmp_path) == ["search/choice.json"]
    (tmp_path / "plan").mkdir()
    (tmp_path / "plan" / "stage.json").write_text('{"stage": "plan", "colour": 1}')
    with pytest.raises(ValueError, match="not a stage record of lwnas run"):
        read_record(tmp_path, "plan")


def test_digest_is_of_the_bytes(tmp_path):
    (tmp_path / "a").write_bytes(b"x")
    (tmp_path / "b").write_bytes(b"x")
    (tmp_path / "c").write_bytes(b"y")
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")
