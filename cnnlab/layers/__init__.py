"""nn.Module building blocks: the book's from-scratch/exercise layers and the chapter-8 blocks."""

from cnnlab.layers.blocks import *  # noqa: F401,F403
from cnnlab.layers.scratch import *  # noqa: F401,F403
