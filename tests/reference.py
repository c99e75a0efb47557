"""Where the published reference data lives in this repository.

tests/data/reference holds, unchanged, the OpenPAYGO Token test vectors
(test_tokens.jsonl, the 80 published tokens) and the device list template
(example_device_list.csv) as published with the normative documentation.
They are kept beside the tests so that a clone of the project alone runs its
own tests.
"""

from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parent / "data" / "reference"
VECTORS_FILE = REFERENCE_DIR / "test_tokens.jsonl"
EXAMPLE_DEVICE_LIST = REFERENCE_DIR / "example_device_list.csv"
