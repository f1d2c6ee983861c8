"""The one step from an analysed window to the mood, shared by the daemon and every evaluation.

:class:`MoodStep` takes a window as the :class:`~ser_stream.pipeline.Analyzer`
gives it (speech flag, window vector) and returns it scored (probabilities,
arousal, valence: :class:`~ser_stream.pipeline.WindowScorer`, with the stream's
adaptation statistics and the household prior as configured) together with
the smoothed :class:`~ser_stream.mood.MoodState`. ``run`` streams through it
(:func:`ser_stream.service.run_stream`) and so does the household protocol
(:func:`ser_stream.training.scoring.score_stream`): the accuracy figures
describe the program a home runs.

The setup helpers (:func:`make_adapter`, :func:`make_tracker`) live here, and
:func:`~ser_stream.pipeline.make_analyzer` beside the analyzer, so that offline
code needs nothing from the daemon module.
"""

from __future__ import annotations

from .config import Config
from .model import Model
from .mood import MoodState, MoodTracker
from .pipeline import WindowResult, WindowScorer, label_prior
from .voices import Household


def adapts(config: Config, model: Model) -> bool:
    """Whether streams adapt: adaptation is on and the model has an adaptive head."""
    return config.adaptation.enabled and model.adaptive is not None


def make_adapter(config: Config, model: Model) -> Household | None:
    """The stream's adaptation statistics, from the population's, when :func:`adapts`: one per voice
    of the home when the model has a voice embedding and ``adaptation.max_voices`` > 0."""
    if not adapts(config, model):
        return None
    a = config.adaptation
    return Household(prior=model.adaptive.prior, max_windows=a.max_windows, embedding=model.voices,
                     max_voices=a.max_voices, spread_reference=a.arousal_spread)


def make_tracker(config: Config, model: Model) -> MoodTracker:
    """The configured mood smoother for ``model``'s labels."""
    m = config.mood
    return MoodTracker(labels=model.labels, min_confidence=m.min_confidence, min_dwell_seconds=m.min_dwell_seconds,
                       smoothing_seconds=m.smoothing_seconds, idle_after_seconds=m.idle_after_seconds,
                       arousal_on=m.arousal_on, arousal_off=m.arousal_off)


class MoodStep:
    """A stream's window -> mood step: scorer, adaptation statistics and mood smoother of one stream.

    Owned by the thread that streams (the daemon's pipeline loop, or one evaluation stream); not
    thread-safe. ``adapter`` is None when the stream does not adapt.
    """

    def __init__(self, model: Model, config: Config) -> None:
        self.model = model
        self.adapter = make_adapter(config, model)
        self.scorer = WindowScorer(model, adapter=self.adapter, label_prior=label_prior(config, model))
        self.tracker = make_tracker(config, model)

    @property
    def settled(self) -> bool:
        """Whether the stream's statistics are its own yet (always, without adaptation)."""
        return self.adapter is None or self.adapter.settled

    def step(self, window: WindowResult, *, hop_seconds: float) -> tuple[WindowResult, MoodState]:
        """Score ``window`` (its ``vector`` is needed when it is speech) and feed it to the mood;
        returns the window with its answer and the mood after it."""
        if window.speech:
            if window.vector is None:
                raise ValueError("a speech window needs its vector to be scored")
            window = self.scorer.scored(window)
        state = self.tracker.update(t=window.t, hop_seconds=hop_seconds, probs=window.probs, arousal=window.arousal,
                                    valence=window.valence, settled=self.settled)
        return window, state

    def reset_mood(self, *, t: float) -> bool:
        """Forget the mood (mute); returns True if it changed. The adaptation statistics stay."""
        return self.tracker.reset(t=t)
