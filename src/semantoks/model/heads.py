"""Projection head into the L2-normalised space where the distillation losses live."""

import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """2-layer MLP dim -> hidden -> out, L2-normalised output (float32)."""

    def __init__(self, dim, hidden=2048, out=128):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, out)
        for layer in (self.fc1, self.fc2):
            nn.init.trunc_normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        return F.normalize(self.fc2(F.gelu(self.fc1(x))).float(), dim=-1)
