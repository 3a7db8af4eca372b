"""DAMA / MAE self-supervised pretraining of N-channel ViT encoders."""
