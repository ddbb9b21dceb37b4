"""Speaker behaviour of the synthetic cohort: dynamic signatures over expression + jaw.

A speaker is a set of named signature parameters (speech rhythm, expression episodes,
couplings, blinks, head motion, and an expression "texture" that lives only in temporal
structure). A conversation is simulated frame by frame for both participants together:
turn-taking decides who speaks, the speaker's phrases and syllables drive the jaw, and
episodes (smiles, brow raises, frowns, blinks, nods) are laid on top.

Identity enters only through the parameters; ``signature_strength`` scales how far each
speaker's parameters sit from the population mean (0 = everyone identical = chance).
The per-speaker ``instability`` scales how much those parameters move from session to
session (and, in the generator, how much the apparent face shape drifts): unstable
speakers are harder to recognise across sessions, which DNR must later detect.

One mechanism is order-only by construction: the *texture* components follow a
resonant AR(2) process with a speaker-specific frequency and damping, and are then
mapped through ranks onto one fixed Gaussian marginal. Every speaker therefore has the
same distribution of texture values in every session (order-blind statistics see
nothing), and identity is present only in the timing. The brow-raise lag relative to
phrase onsets is a second timing-only cue.

All of this is a model *for testing the pipeline*: plausible, measurable, and with ground
truth, not a claim about how real people move.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter
from scipy.special import ndtri

#: Population distribution of every signature parameter: (mean, sd, low, high).
#: Speakers sit at mean + strength * sd * z, clipped to [low, high].
SIGNATURE_PARAMETERS: dict[str, tuple[float, float, float, float]] = {
    # speech (jaw, lips, mouth shape per syllable)
    "syllable_rate_hz": (4.5, 0.7, 3.0, 6.5),
    "jaw_amplitude_rad": (0.15, 0.035, 0.06, 0.25),
    "lip_opening": (1.6, 0.4, 0.5, 2.8),
    "rest_lip_part": (0.5, 0.3, 0.0, 1.2),
    "viseme_amplitude": (2.0, 0.5, 0.8, 3.0),
    "stress_share": (0.3, 0.12, 0.05, 0.6),
    "rhythm_jitter": (0.25, 0.10, 0.02, 0.6),
    "phrase_s": (1.6, 0.5, 0.5, 4.0),
    "pause_s": (0.45, 0.15, 0.12, 1.2),
    "turn_s": (5.0, 1.5, 2.0, 10.0),
    # expression episodes
    "smile_rate_per_min": (6.0, 2.0, 1.0, 12.0),
    "smile_duration_s": (2.0, 0.7, 0.5, 5.0),
    "smile_intensity": (2.2, 0.5, 1.0, 3.2),
    "smile_asymmetry": (0.0, 0.4, -1.0, 1.0),
    "brow_rate_per_min": (11.0, 3.0, 3.0, 20.0),
    "brow_intensity": (2.0, 0.5, 1.0, 3.0),
    "brow_duration_s": (0.8, 0.3, 0.3, 2.0),
    "frown_rate_per_min": (1.5, 1.0, 0.1, 6.0),
    "frown_intensity": (1.2, 0.4, 0.3, 2.5),
    # couplings (timing)
    "brow_phrase_coupling": (0.5, 0.25, 0.0, 1.0),
    "brow_phrase_lag_s": (0.0, 0.25, -0.5, 0.5),
    "smile_turn_end_coupling": (0.4, 0.25, 0.0, 1.0),
    "jaw_smile_coupling": (0.0, 0.4, -1.0, 1.0),
    # blinks
    "blink_rate_per_min": (17.0, 5.0, 8.0, 28.0),
    "blink_duration_s": (0.24, 0.06, 0.12, 0.40),
    "blink_phrase_coupling": (0.3, 0.2, 0.0, 1.0),
    # head motion
    "head_yaw_sd_rad": (0.08, 0.03, 0.02, 0.18),
    "head_pitch_sd_rad": (0.05, 0.02, 0.01, 0.12),
    "head_motion_hz": (0.3, 0.12, 0.08, 0.8),
    "nod_rate_per_min": (6.0, 3.0, 0.5, 15.0),
    "nod_amplitude_rad": (0.08, 0.03, 0.02, 0.18),
    # order-only texture (identical marginals by construction)
    "texture_hz": (0.7, 0.35, 0.15, 2.0),
    "texture_damping": (0.25, 0.10, 0.05, 0.7),
}
#: Session-to-session movement of signature parameters, in population sd, per unit
#: of instability.
SESSION_SD_PER_INSTABILITY = 0.9
#: Head-motion habits vary between calls by the same amount for everyone (in population
#: sd): instability acts on the expression signature and the apparent shape. Otherwise the
#: pose-dependent noise of shape estimates would grow with instability and mask its drift.
HEAD_MOTION_PARAMETERS = (
    "head_yaw_sd_rad",
    "head_pitch_sd_rad",
    "head_motion_hz",
    "nod_rate_per_min",
    "nod_amplitude_rad",
)
HEAD_MOTION_SESSION_SD = 0.45
TEXTURE_SCALE = 1.0  # coefficient scale of the texture components (the same for everyone)
POSITIVE_TEXTURE_SCALE = 0.5  # the same for the positive ones (they hold the lips apart)
BACKGROUND_SD = 0.08  # small identity-free AR(1) noise on all other expression components
MAX_EPISODE = 3.5  # strongest smile or brow raise (coefficient units; 2-3 is a strong one)
MAX_JAW_OPEN_RAD = 0.4  # a wide-open mouth in speech; beyond it is a yawn
CHEEK_PER_SMILE = 0.8  # cheek raise (eye narrowing) per unit of smile
EYES_WIDE_PER_BROW = 1.0  # upper-lid raise per unit of brow raise


@dataclass(frozen=True)
class ExpressionRoles:
    """Which expression coefficient plays which role (indices into the expression vector)."""

    smile: int
    smile_left: int | None
    smile_right: int | None
    brow_raise: int
    frown: int
    blink: int
    texture: tuple[int, ...]
    blink_closed: float = 2.5  # coefficient at which the lids meet
    jaw_open_sign: float = 1.0  # sign of the jaw x-rotation that opens the mouth
    #: Texture components whose sign must stay positive (they open the lips when positive;
    #: negative values would close the lips through each other). Indices into ``texture``.
    texture_positive: tuple[int, ...] = ()
    lips_part: int | None = None  # parts the lips without the jaw (speech, contacts)
    lip_stretch: int | None = None  # spread vowels
    pucker: int | None = None  # rounded vowels
    cheek_raise: int | None = None  # narrows the eyes in a felt smile
    eyes_wide: int | None = None  # widens the eyes with raised brows

    @classmethod
    def from_names(
        cls, names: Sequence[str], blink_closed: float = 2.5, jaw_open_sign: float = 1.0
    ) -> ExpressionRoles:
        """Resolve roles from the head's component names (``components.json``)."""
        lower = [n.lower() for n in names]

        def find(*keys: str, required: bool = True) -> int | None:
            for key in keys:  # exact names first, then names containing the key
                if key in lower:
                    return lower.index(key)
            for key in keys:
                for i, name in enumerate(lower):
                    if key in name:
                        return i
            if required:
                raise ValueError(f"head has no expression component named like {keys}: {names}")
            return None

        smile = find("smile")
        left = find("smile_left", "left_smile", "smile_l", required=False)
        right = find("smile_right", "right_smile", "smile_r", required=False)
        used = {smile, left, right}
        brow, frown = find("brow_raise", "brow_up"), find("brow_lower", "frown", "brow_down")
        blink = find("blink", "eye_clos", "eyes_clos")
        used |= {brow, frown, blink}
        speech = {
            key: find(key, required=False)
            for key in ("lips_part", "lip_stretch", "pucker", "cheek_raise", "eyes_wide")
        }
        used |= {v for v in speech.values() if v is not None}
        texture, positive = [], []
        # Texture goes on components no other role drives. How well 68 landmarks tell them
        # apart from the rest is measured by analysis/identifiability.py (mouth_frown's
        # landmark motion is 99 % explained by the other dominant components; docs/fitting.md).
        # The upper-lip raise opens the lips when positive, so its texture keeps a positive
        # marginal.
        for keys, is_positive in (
            (("upper_lip_raise", "upper_lip"), True),
            (("mouth_frown",), False),
            (("inner_brow_raise",), False),
        ):
            idx = find(*keys, required=False)
            if idx is not None and idx not in used:
                if is_positive:
                    positive.append(len(texture))
                texture.append(idx)
                used.add(idx)
        if not texture:
            raise ValueError("head has no component usable as texture (upper lip raise, ...)")
        return cls(
            smile=smile,
            smile_left=left,
            smile_right=right,
            brow_raise=brow,
            frown=frown,
            blink=blink,
            texture=tuple(texture),
            blink_closed=blink_closed,
            jaw_open_sign=jaw_open_sign,
            texture_positive=tuple(positive),
            **speech,
        )


def sample_signatures(
    speaker_ids: Sequence[str],
    strength: float,
    instability_range: tuple[float, float],
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Per-speaker signature parameters and instability (one row per speaker)."""
    rows = {}
    for name, (mean, sd, lo, hi) in SIGNATURE_PARAMETERS.items():
        rows[name] = np.clip(mean + strength * sd * rng.standard_normal(len(speaker_ids)), lo, hi)
    rows["instability"] = rng.uniform(*instability_range, size=len(speaker_ids))
    return pd.DataFrame(rows, index=pd.Index(list(speaker_ids), name="speaker_id"))


def session_parameters(
    signature: Mapping[str, float], rng: np.random.Generator
) -> dict[str, float]:
    """The speaker's parameters in one session: signature + instability-scaled movement."""
    out = {}
    spread = SESSION_SD_PER_INSTABILITY * float(signature["instability"])
    for name, (_mean, sd, lo, hi) in SIGNATURE_PARAMETERS.items():
        k = HEAD_MOTION_SESSION_SD if name in HEAD_MOTION_PARAMETERS else spread
        out[name] = float(np.clip(signature[name] + k * sd * rng.standard_normal(), lo, hi))
    return out


# --------------------------------------------------------------------------- primitives


def _envelope(n: int, attack: int) -> np.ndarray:
    """Smooth attack-hold-release envelope of length n with raised-cosine ramps."""
    attack = max(1, min(attack, n // 2))
    env = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, attack + 2)[1:-1])
    env[:attack] = ramp
    env[n - attack :] = ramp[::-1]
    return env


def _add_episode(
    track: np.ndarray,
    start_s: float,
    duration_s: float,
    amplitude: float,
    fps: float,
    attack_s: float = 0.25,
) -> None:
    """Lay one episode (a positive pulse) onto a track of episodes of the same kind.

    Overlapping episodes combine by their maximum, not their sum: a brow that is already
    raised, or a jaw that is already open, cannot move twice as far because a second raise
    or syllable starts.
    """
    start = round(start_s * fps)
    n = max(2, round(duration_s * fps))
    lo, hi = max(start, 0), min(start + n, len(track))
    if hi <= lo:
        return
    env = _envelope(n, round(attack_s * fps))
    np.maximum(track[lo:hi], amplitude * env[lo - start : hi - start], out=track[lo:hi])


def _poisson_times(rate_per_min: float, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    n = rng.poisson(rate_per_min * duration_s / 60.0)
    return np.sort(rng.uniform(0, duration_s, n))


def _ar1(
    n: int, fps: float, hz: float, sd: float, rng: np.random.Generator, burn_in: int = 200
) -> np.ndarray:
    """Stationary AR(1) noise with the given corner frequency and marginal sd."""
    a = float(np.exp(-2 * np.pi * hz / fps))
    eps = rng.standard_normal(n + burn_in) * np.sqrt(1 - a * a)
    return sd * lfilter([1.0], [1.0, -a], eps)[burn_in:]


def resonant_texture(
    n: int,
    fps: float,
    hz: float,
    damping: float,
    rng: np.random.Generator,
    burn_in: int = 300,
    positive: bool = False,
) -> np.ndarray:
    """AR(2) resonator at ``hz`` with damping ratio ``damping``, rank-mapped to N(0, 1).

    The rank mapping makes the marginal exactly the Gaussian quantiles (``positive``: the
    half-normal quantiles, |N(0, 1)|), whatever the parameters: only temporal order
    distinguishes speakers.
    """
    omega = 2 * np.pi * hz / fps
    r = float(np.exp(-damping * omega))
    x = lfilter([1.0], [1.0, -2 * r * np.cos(omega), r * r], rng.standard_normal(n + burn_in))
    x = x[burn_in:]
    ranks = np.argsort(np.argsort(x))
    if positive:
        return ndtri(0.5 + 0.5 * (ranks + 0.5) / n)
    return ndtri((ranks + 0.5) / n)


# --------------------------------------------------------------------------- conversation


@dataclass
class SpeakerTrack:
    """Per-frame truth for one participant of a simulated conversation."""

    expression: np.ndarray  # (T, n_expr)
    jaw: np.ndarray  # (T, 3) axis-angle
    rotation: np.ndarray  # (T, 3) global head rotation, axis-angle
    speaking: np.ndarray  # (T,) bool


def turn_schedule(
    params: Sequence[Mapping[str, float]], duration_s: float, rng: np.random.Generator
) -> list[tuple[int, float, float]]:
    """Alternating turns ``(speaker index, start_s, end_s)`` with gaps of 0.1-0.6 s."""
    turns, t, who = [], float(rng.uniform(0, 1.0)), int(rng.integers(2))
    while t < duration_s:
        length = rng.gamma(4.0, params[who]["turn_s"] / 4.0)
        turns.append((who, t, min(t + length, duration_s)))
        t += length + rng.uniform(0.1, 0.6)
        who = 1 - who
    return turns


def simulate_speaker(
    params: Mapping[str, float],
    turns: Sequence[tuple[float, float]],
    other_turn_ends: Sequence[float],
    duration_s: float,
    fps: float,
    n_expr: int,
    roles: ExpressionRoles,
    mood: Mapping[str, float],
    pose_scale: float,
    rng: np.random.Generator,
) -> SpeakerTrack:
    """Frame-by-frame expression, jaw and head rotation of one participant.

    Args:
        params: session parameters (:func:`session_parameters`).
        turns: this speaker's turns (start_s, end_s).
        other_turn_ends: when the partner's turns end (listener responses).
        mood: session offsets, keys ``smile`` and ``brow``.
        pose_scale: session factor on head-motion range (camera framing, posture).
    """
    n = round(duration_s * fps)
    expr = np.zeros((n, n_expr))
    jaw_open = np.zeros(n)
    pitch = np.zeros(n)
    speaking = np.zeros(n, dtype=bool)
    phrase_onsets: list[float] = []
    phrase_ends: list[float] = []

    lips_open = np.zeros(n)
    rounded = np.zeros(n)
    spread = np.zeros(n)
    # Speech: phrases of syllables inside each turn. Every syllable opens the jaw and the
    # lips together and gives the mouth a vowel shape (rounded, spread or neutral);
    # stressed syllables open wider.
    for start, end in turns:
        speaking[round(start * fps) : round(end * fps)] = True
        t = start
        while t < end - 0.2:
            phrase_end = min(end, t + rng.gamma(3.0, params["phrase_s"] / 3.0))
            phrase_onsets.append(t)
            phrase_ends.append(phrase_end)
            s = t
            while s < phrase_end:
                period = 1.0 / params["syllable_rate_hz"]
                width = period * rng.uniform(0.7, 1.0)
                stress = 1.5 if rng.random() < params["stress_share"] else 1.0
                amp = params["jaw_amplitude_rad"] * stress * rng.lognormal(0.0, 0.3)
                _add_episode(jaw_open, s, width, amp, fps, attack_s=width / 2)
                lips = params["lip_opening"] * stress * rng.lognormal(0.0, 0.3)
                _add_episode(lips_open, s, width, lips, fps, attack_s=width / 2)
                vowel = int(rng.integers(3))
                if vowel < 2:
                    shape = params["viseme_amplitude"] * rng.lognormal(0.0, 0.3)
                    _add_episode(
                        rounded if vowel == 0 else spread, s, width, shape, fps, attack_s=width / 2
                    )
                s += period * max(0.3, 1 + params["rhythm_jitter"] * rng.standard_normal())
            t = phrase_end + rng.gamma(2.0, params["pause_s"] / 2.0)

    # Smiles: spontaneous, plus after the partner's turns end (listener response).
    smile = np.zeros(n)
    times = list(_poisson_times(params["smile_rate_per_min"], duration_s, rng))
    times += [
        e + rng.uniform(0.1, 0.6)
        for e in other_turn_ends
        if rng.random() < params["smile_turn_end_coupling"]
    ]
    for t0 in times:
        dur = params["smile_duration_s"] * rng.lognormal(0, 0.3)
        _add_episode(smile, t0, dur, params["smile_intensity"] * rng.lognormal(0, 0.2), fps, 0.3)

    # Brow raises: a coupled share fires at phrase onsets with the speaker's own lag.
    brow = np.zeros(n)
    n_brows = rng.poisson(params["brow_rate_per_min"] * duration_s / 60.0)
    coupled = [t for t in phrase_onsets if rng.random() < params["brow_phrase_coupling"]]
    coupled = coupled[:n_brows]
    free = _poisson_times(params["brow_rate_per_min"], duration_s, rng)[: n_brows - len(coupled)]
    for t0 in [t + params["brow_phrase_lag_s"] for t in coupled] + list(free):
        dur = params["brow_duration_s"] * rng.lognormal(0, 0.25)
        _add_episode(brow, t0, dur, params["brow_intensity"] * rng.lognormal(0, 0.2), fps, 0.15)

    frown = np.zeros(n)
    for t0 in _poisson_times(params["frown_rate_per_min"], duration_s, rng):
        _add_episode(
            frown,
            t0,
            rng.uniform(0.8, 2.5),
            params["frown_intensity"] * rng.lognormal(0, 0.2),
            fps,
            0.3,
        )

    # Blinks: a share at phrase boundaries, the rest spontaneous.
    blink = np.zeros(n)
    blink_times = list(_poisson_times(params["blink_rate_per_min"], duration_s, rng))
    blink_times += [t for t in phrase_ends if rng.random() < params["blink_phrase_coupling"]]
    for t0 in blink_times:
        _add_episode(
            blink,
            t0,
            params["blink_duration_s"],
            roles.blink_closed,
            fps,
            attack_s=params["blink_duration_s"] / 2.5,
        )
    np.clip(blink, 0.0, roles.blink_closed, out=blink)

    # Nods: listener backchannels and emphasis, as pitch pulses.
    for t0 in _poisson_times(params["nod_rate_per_min"], duration_s, rng):
        _add_episode(pitch, t0, rng.uniform(0.3, 0.6), params["nod_amplitude_rad"], fps, 0.12)

    np.minimum(jaw_open, MAX_JAW_OPEN_RAD, out=jaw_open)
    expr += _background(n, n_expr, fps, rng)
    np.minimum(smile, MAX_EPISODE, out=smile)
    np.minimum(brow, MAX_EPISODE, out=brow)
    expr[:, roles.smile] += smile + mood["smile"] + params["jaw_smile_coupling"] * 4 * jaw_open
    if roles.smile_left is not None and roles.smile_right is not None:
        asym = params["smile_asymmetry"] * 0.5 * smile
        expr[:, roles.smile_left] += asym
        expr[:, roles.smile_right] -= asym
    expr[:, roles.brow_raise] += brow + mood["brow"]
    expr[:, roles.frown] += frown
    expr[:, roles.blink] = blink
    for idx, track in (
        (roles.lips_part, lips_open + params["rest_lip_part"]),
        (roles.pucker, rounded),
        (roles.lip_stretch, spread),
        # eyes narrow in a felt smile and widen with raised brows
        (roles.cheek_raise, CHEEK_PER_SMILE * smile),
        (roles.eyes_wide, EYES_WIDE_PER_BROW * brow),
    ):
        if idx is not None:
            expr[:, idx] += track
    for k, idx in enumerate(roles.texture):
        # Slightly detuned per component so the components are not copies of each other.
        hz = params["texture_hz"] * (1.0 + 0.15 * k)
        positive = k in roles.texture_positive
        scale = POSITIVE_TEXTURE_SCALE if positive else TEXTURE_SCALE
        expr[:, idx] = scale * resonant_texture(
            n, fps, hz, params["texture_damping"], rng, positive=positive
        )

    jaw = np.zeros((n, 3))
    jaw[:, 0] = roles.jaw_open_sign * jaw_open
    jaw[:, 1] = _ar1(n, fps, 0.5, 0.01, rng)  # slight lateral jaw motion
    rotation = np.zeros((n, 3))
    rotation[:, 0] = (
        pose_scale * _ar1(n, fps, params["head_motion_hz"], params["head_pitch_sd_rad"], rng)
        + pitch
    )
    rotation[:, 1] = pose_scale * _ar1(
        n, fps, params["head_motion_hz"], params["head_yaw_sd_rad"], rng
    )
    rotation[:, 2] = pose_scale * _ar1(n, fps, params["head_motion_hz"], 0.03, rng)
    return SpeakerTrack(expression=expr, jaw=jaw, rotation=rotation, speaking=speaking)


def _background(n: int, n_expr: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Identity-free small motion on every expression component (population parameters)."""
    out = np.empty((n, n_expr))
    for k in range(n_expr):
        out[:, k] = _ar1(n, fps, 0.5, BACKGROUND_SD / (1 + 0.05 * k), rng)
    return out


def simulate_conversation(
    params: Sequence[Mapping[str, float]],
    moods: Sequence[Mapping[str, float]],
    pose_scales: Sequence[float],
    duration_s: float,
    fps: float,
    n_expr: int,
    roles: ExpressionRoles,
    rng: np.random.Generator,
) -> list[SpeakerTrack]:
    """Both participants of one conversation, sharing one turn-taking schedule."""
    turns = turn_schedule(params, duration_s, rng)
    tracks = []
    for who in (0, 1):
        own = [(s, e) for w, s, e in turns if w == who]
        other_ends = [e for w, _s, e in turns if w != who]
        tracks.append(
            simulate_speaker(
                params[who],
                own,
                other_ends,
                duration_s,
                fps,
                n_expr,
                roles,
                moods[who],
                pose_scales[who],
                rng,
            )
        )
    return tracks
