"""Beam's state cache weighs values without walking every loaded module's globals (see
csadetect/transforms/common.py): the setting is on once the transforms are imported, and the
weights it gives are those of the values themselves."""
from __future__ import annotations

import objsize
from apache_beam.runners.worker import statecache

import csadetect.transforms.common  # noqa: F401  (sets objsize's default)


def test_state_values_are_weighed_without_the_module_walk():
    assert objsize.default_settings.exclude_modules_globals is False
    value = [{"conversation": "c-1", "messages": ["hello"] * 3, "score": 0.25}]
    with_walk = objsize.get_deep_size(*value, get_size_func=statecache._size_func,
                                      get_referents_func=statecache._get_referents_func,
                                      filter_func=statecache._filter_func, exclude_modules_globals=True)
    assert statecache.get_deep_size(*value) == with_walk  # same weight, without the walk
    assert statecache.get_deep_size(True) == objsize.get_deep_size(True, exclude_modules_globals=True)
