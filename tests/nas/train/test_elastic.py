"""A torchrun restart resumes only this run's checkpoint."""
import pytest

from nas.train.elastic import auto_resume, run_identity, settings_digest

SETTINGS = {"dataset": "dsb2018", "seed": 0, "epochs": 2, "progress": False, "num_workers": 0}


def test_auto_resume_refuses_another_runswrite_checkpoint(tmp_path, torchrun_restart, write_checkpoint):
    identity = run_identity(SETTINGS)
    assert identity == {"run_id": "job-7", "settings": settings_digest(SETTINGS)}
    others = {"another torchrun job": {"run_id": "job-6", "settings": identity["settings"]},
              "other settings": run_identity({**SETTINGS, "seed": 1}),
              "no identity": None}
    for name, run in others.items():
        path = write_checkpoint(tmp_path / name, run)
        with pytest.raises(FileExistsError, match="belongs to another run"):
            auto_resume(path, identity, restarted=1)
    own = write_checkpoint(tmp_path / "own", identity, partial={"epoch": 1, "step": 2})
    assert auto_resume(own, identity, restarted=1) == {"epoch": 0, "step": 2}
    assert auto_resume(own, identity, restarted=0) is None  # a first start never resumes
    assert auto_resume(tmp_path / "empty" / "checkpoint.pt", identity, restarted=1) is None


def test_settings_digest_ignores_only_what_does_not_change_the_run():
    assert settings_digest(SETTINGS) == settings_digest({**SETTINGS, "progress": True,
                                                         "num_workers": 4})
    assert settings_digest(SETTINGS) != settings_digest({**SETTINGS, "epochs": 3})
