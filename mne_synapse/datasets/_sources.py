"""The simulated cortex of the synthetic data set: lead fields, background noise,
induced oscillations."""

import numpy as np

# Scale of the induced oscillations relative to the ERP waveforms: chosen so that
# a band-power decoder reads the induced world about as well as a time-domain
# decoder reads the ERP world (see tests/test_synthetic.py).
INDUCED_GAIN = 0.5


def lead_fields(n_sources, rng, centre_pool):
    """Dipole-like scalp patterns: a positive lobe and a weaker opposite one."""
    centres = centre_pool[rng.choice(len(centre_pool), n_sources, replace=False)]
    offsets = rng.normal(size=(n_sources, 3))
    offsets *= 0.04 / np.linalg.norm(offsets, axis=1, keepdims=True)
    widths = rng.uniform(0.025, 0.04, n_sources)
    return centres, offsets, widths


def project(ch_pos, centres, offsets, widths):
    """(n_chans, n_sources) gain matrix of the dipole-like patterns."""
    def blob(c):
        d2 = ((ch_pos[:, None, :] - c[None]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * widths[None] ** 2))

    gain = blob(centres) - 0.6 * blob(centres + offsets)
    return gain / np.abs(gain).max(axis=0, keepdims=True)


def pink_noise(rng, shape, sfreq):
    """Noise with a 1/f power spectrum along the last axis."""
    n_times = shape[-1]
    spectrum = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    freqs[0] = freqs[1]
    noise = np.fft.irfft(spectrum / np.sqrt(freqs), n=n_times, axis=-1)
    return noise / noise.std(axis=-1, keepdims=True)


def induced_sources(rng, code, drive, source_gain, times):
    """Oscillations whose power, not waveform, follows the image; and their amplitudes.

    Each source oscillates at its own frequency (jittered per subject and trial)
    under a fixed envelope, with a random phase on every trial: the trial
    average cancels it, band power keeps it.
    """
    n_trials, n_sources = drive.shape
    amplitude = source_gain[None, :] * np.exp(0.7 * drive)  # >= 0: the image sets the power
    freqs = code["freqs"] + rng.normal(0, 0.5, n_sources)  # the subject's peak frequencies
    freqs = freqs[None, :] + rng.normal(0, 0.5, (n_trials, n_sources))
    phase = rng.uniform(0, 2 * np.pi, (n_trials, n_sources))
    envelope = np.exp(-0.5 * ((times[None] - code["centres"][:, None])
                              / code["widths"][:, None]) ** 2)
    carrier = np.cos(2 * np.pi * freqs[..., None] * times + phase[..., None])
    return INDUCED_GAIN * amplitude[..., None] * envelope[None] * carrier, amplitude
