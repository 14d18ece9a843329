"""Operations: one module per command, built from core pieces, given Settings."""
