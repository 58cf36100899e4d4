"""Policy tests run torch on one thread: on a shared 2-core machine a second thread only waits."""

import torch

torch.set_num_threads(1)
