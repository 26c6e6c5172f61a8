"""Models that transformers does not ship, rebuilt from their official code with its parameter
names so that the official weight files load one to one: EVA ViT-g (:mod:`.eva_vit`) and
MiniGPT-v2 (:mod:`.minigpt_v2`). Shared modules: the family adapters that serve them live one
level up (:mod:`mm_align.adapters.minigpt_v2`)."""
