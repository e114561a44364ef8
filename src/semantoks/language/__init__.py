"""Language-aligned network tokens: descriptor texts, frozen text encoders, alignment heads, codes, evaluation."""
