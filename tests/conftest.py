import os
import sys
from pathlib import Path

# Set before anything imports huggingface_hub / datasets, which read these once. The suite never uses the
# network: a hub read fails at once instead of retrying, and the built-in data sets come from the local
# copies through the ITERO_DATA_DIR override (a test that wants the hub path unsets it).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("ITERO_DATA_DIR", str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
# float results move with the thread count: the suite must pass with 1 and with 2 (ITERO_TEST_THREADS=1)
torch.set_num_threads(int(os.environ.get("ITERO_TEST_THREADS", "2")))
