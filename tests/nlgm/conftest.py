"""The machine's few cores are shared by many processes: one torch thread per test process
avoids two thread pools fighting over them (which made small training runs ten times slower)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
