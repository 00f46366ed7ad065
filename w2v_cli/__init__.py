"""w2v: a command-line speech-recognition toolkit built on wav2vec 2.0 and transformers."""

__version__ = "0.1.0"
