"""The Python API: ingest, open_store and search as a script uses them, on a real photo."""

from __future__ import annotations

import shutil

import pytest

import vestis
from indexer import MediaStatus, NoStore
from search_api.results import SearchResponse


def test_open_store_refuses_a_data_dir_with_no_store(tmp_path):
    with pytest.raises(NoStore, match="no Vestis store in"):
        with vestis.open_store(tmp_path / "typo"):
            pass
    assert not (tmp_path / "typo").exists()


def test_a_bad_setting_is_refused_by_name(tmp_path):
    from configs.settings import ConfigError

    with pytest.raises(ConfigError, match="did you mean sampling.fps"):
        vestis.search("dress", tmp_path, overrides={"sampling.fpz": 2})


@pytest.mark.slow
def test_ingest_then_search_from_python(tmp_path, shared_data):
    photo = tmp_path / "in" / "photo.jpg"
    photo.parent.mkdir()
    shutil.copyfile(shared_data / "ccp" / "images" / "0001.jpg", photo)
    data = tmp_path / "data"
    report = vestis.ingest([photo.parent], data, overrides={"cluster.workers": 1,
                                                           "vision.stages": ["person_detection", "garments"]})
    assert [o.status for o in report.outcomes] == ["done"] and not report.failed
    with vestis.open_store(data) as store:
        [record] = store.list_media()
        assert record.status == MediaStatus.DONE and record.path.endswith("photo.jpg")
    answer = vestis.search("", data, overrides={"search.text_model": ""})
    assert isinstance(answer, SearchResponse) and answer.total >= 1  # the people in the photo
    [video] = answer.videos
    assert video.name == "photo.jpg" and any(m.wearing for m in video.moments)  # outfits labelled
