"""Chapter-8 network blocks (VGG, NiN, Inception, Residual, ResNeXt, Dense)."""

__all__: list[str] = []
