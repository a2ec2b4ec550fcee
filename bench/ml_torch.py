#!/usr/bin/env python3
"""bench/ml_torch.py - the PyTorch CPU side of bench-ml's training figures (optional; never a
dependency of the build or the tests): the same networks, batch sizes, loss (L1), optimiser
(Adam, lr 1e-3), gradient clipping and sample counts as bench/ml.c, in samples/s over about 2 s
per figure, after one warm-up epoch, and per CPU second (as bench-ml).

    python3 bench/ml_torch.py [--threads N] [name substring]

stint masks the padding of right-aligned sequences; here every sequence runs all its steps
(PyTorch's fastest path; with random lengths 1..W a batch of 64 almost always holds a full-length
row, so stint runs all W steps too). Dropout as stint's: on each recurrent layer's input."""
import argparse
import time

import torch
from torch import nn

# name, cell, layers, units, steps, features, embed, dropout, clip, batch, n_train (bench/ml.c)
CONFIGS = [
    ("seed LSTM(250) 1 step x 9 feat", "lstm", 1, 250, 1, 9, 0, 0.0, 0.0, 400, 40000),
    ("LSTM(64) 16 steps x 9 feat", "lstm", 1, 64, 16, 9, 0, 0.0, 0.0, 400, 8000),
    ("eval seq LSTM(32) W16 b64", "lstm", 1, 32, 16, 16, 1, 0.0, 1.0, 64, 8000),
    ("eval seq GRU(32) W16 b64", "gru", 1, 32, 16, 16, 1, 0.0, 1.0, 64, 8000),
    ("eval seq LSTM(64)x2 W16 drop0.1 b64", "lstm", 2, 64, 16, 16, 1, 0.1, 1.0, 64, 4000),
    ("eval parity LSTM(250) 1 step x 6 feat", "lstm", 1, 250, 1, 6, 0, 0.0, 0.0, 400, 40000),
]


class Net(nn.Module):
    def __init__(self, cell, layers, units, features, embed, dropout):
        super().__init__()
        self.embed = nn.Embedding(32, 4) if embed else None
        width = features - 1 + 4 if embed else features
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.drop = nn.Dropout(dropout) if dropout > 0 else None
        self.layers = nn.ModuleList()
        for _ in range(layers):
            self.layers.append(rnn(width, units, batch_first=True))
            width = units
        self.head = nn.Linear(units, 1)

    def forward(self, x):
        if self.embed is not None:
            x = torch.cat([self.embed(x[:, :, 0].long()), x[:, :, 1:]], dim=2)
        for layer in self.layers:
            if self.drop is not None:
                x = self.drop(x)
            x, _ = layer(x)
        return self.head(x[:, -1, :]).squeeze(1)


def bench(cfg):
    name, cell, layers, units, steps, features, embed, dropout, clip, batch, n = cfg
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, steps, features, generator=g)
    if embed:
        x[:, :, 0] = torch.randint(0, 32, (n, steps), generator=g).float()
    y = x[:, 0, 0] * 0.5 + 0.1
    net = Net(cell, layers, units, features, embed, dropout)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.L1Loss()

    def epoch():
        perm = torch.randperm(n)
        for s in range(0, n, batch):
            idx = perm[s : s + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            if clip > 0:
                nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()

    epoch()  # warm-up
    samples, t0, cpu0 = 0, time.perf_counter(), time.process_time()
    while True:
        epoch()
        samples += n
        elapsed = time.perf_counter() - t0
        if elapsed >= 2.0:
            break
    cpu = time.process_time() - cpu0
    print(
        f"{name:<40s} train  {samples / elapsed:10.0f} samples/s  ({samples / cpu:.0f} per CPU s; "
        f"torch {torch.__version__}, batch {batch}, {samples} samples in {elapsed:.2f} s)",
        flush=True,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("filter", nargs="?", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"bench-ml (PyTorch): {args.threads} thread(s), float32, 2 s per training figure")
    for cfg in CONFIGS:
        if args.filter in cfg[0]:
            bench(cfg)


if __name__ == "__main__":
    main()
