"""The examples in the docstrings run and print what they say."""

import doctest

import pytest

import labelsmooth
import labelsmooth._report
import labelsmooth.torch
from labelsmooth import calibration


@pytest.mark.parametrize(
    "module", [labelsmooth, calibration, labelsmooth._report, labelsmooth.torch], ids=lambda m: m.__name__
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_help_reads_well():
    for word in ["probs_or_logits", "class_names", "fit_temperature", "figures", "results.json"]:
        assert word in labelsmooth.report.__doc__
    doc = labelsmooth.cross_entropy.__doc__
    for word in ["label_smoothing", "ignore_index", "reduction", "return_grad", "exclude-true"]:
        assert word in doc
