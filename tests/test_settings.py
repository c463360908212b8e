"""Typed, frozen settings behind the segment, split and augmentation specs: spec -> object -> spec."""

import dataclasses

import pytest

from genrekit.audio.segments import SegmentSettings
from genrekit.data.splits import SplitSettings
from genrekit.errors import UsageError
from genrekit.training.augment import AugmentSettings


@pytest.mark.parametrize("cls, spec, complete", [
    (SegmentSettings, {"window": 3, "last": "drop"}, {"window": 3.0, "hop": 3.0, "last": "drop"}),
    (SegmentSettings, {"window": 2.0, "hop": 0.5, "last": "pad"}, {"window": 2.0, "hop": 0.5, "last": "pad"}),
    (SplitSettings, {"method": "kfold", "folds": 4, "fold": 3, "group_by": "track"},
     {"method": "kfold", "valid_size": 0.1, "test_size": 0.2, "folds": 4, "fold": 3, "group_by": "track", "seed": None}),
    (AugmentSettings, {"gain_db": 6.0, "time_masks": 2},
     {"gain_db": 6.0, "noise_snr_db": None, "shift": 0.0, "freq_masks": 0, "freq_width": 8, "time_masks": 2,
      "time_width": 20}),
])
def test_spec_object_spec_round_trip(cls, spec, complete):
    settings = cls.from_spec(spec)
    assert settings.to_spec() == complete
    assert cls.from_spec(settings.to_spec()) == settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.__setattr__(dataclasses.fields(cls)[0].name, 1)


@pytest.mark.parametrize("cls, spec, message", [
    (SegmentSettings, {"window": 0}, "window must be positive"),
    (SegmentSettings, {"window": 3, "hop": -1}, "hop must be positive"),
    (SegmentSettings, {"window": 3, "last": "wrap"}, "last must be one of"),
    (SegmentSettings, {"widow": 3}, "unknown segment setting 'widow'"),
    (SplitSettings, {"method": "kfold", "folds": 3, "fold": 3}, "fold must be in"),
    (SplitSettings, {"method": "coin"}, "split method must be one of"),
    (SplitSettings, {"group_by": "album"}, "group_by must be one of"),
    (SplitSettings, {"valid_size": 1.5}, "valid_size must be a share"),
    (AugmentSettings, {"gain": 3}, "unknown augmentation 'gain'"),
])
def test_bad_specs_are_refused(cls, spec, message):
    with pytest.raises(UsageError, match=message):
        cls.from_spec(spec)
