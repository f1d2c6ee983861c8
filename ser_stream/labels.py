"""The emotion labels every part of ser-stream speaks: RAVDESS's eight, in its order (docs/contracts.md)."""

LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
