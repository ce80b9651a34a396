"""The book's from-scratch layers and exercise constructions (Conv2D, AvgPoolConv, ...)."""

__all__: list[str] = []
