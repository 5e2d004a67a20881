"""Cohort ``ms``: multiple sclerosis patients and controls, multi-sequence MRI and [11C]PIB DVR.

Patients have WM lesions whose voxels carry a myelin fraction; between t0 and t1 (1-4
months) each patient's voxels demyelinate and remyelinate at patient-specific rates.
PIB DVR follows myelin; MTR and RD follow it only partly (other tissue factors, and
inflammation also lowers MTR), so the translation is hard, as in the thesis. EDSS depends
on the remyelination rate (negatively) and not on the demyelination rate.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from neurotrans.phantom.anatomy import (
    FWHM_TO_SIGMA,
    Template,
    atrophy,
    random_warp,
    smooth_noise,
    uniform_field,
)
from neurotrans.phantom.lesions import draw_lesions
from neurotrans.phantom.mri import STRUCTURAL, structural_mri
from neurotrans.phantom.subject import SimulatedSession, SimulatedSubject

PATIENTS_PER_CONTROL = 18 / 10  # thesis cohort: 18 patients, 10 healthy controls
AGE_RANGE = (20.0, 45.0)
NAWM_MYELIN = 0.98  # normal-appearing WM: nearly normal myelin (NAWM ~ control WM)
NORMAL_MYELIN = 0.85  # below: a demyelinated lesion voxel in the dynamics
PIB_FWHM_MM = 4.0
# DVR noise: a part that stays between the sessions of a subject (voxel-wise kinetic-model bias)
# and a smaller test-retest part (larger, it flips many near-threshold lesion voxels between
# sessions and the dynamic indices of a few-voxel lesion load at 3 mm become noise)
PIB_NOISE = 0.035
PIB_SESSION_NOISE = 0.008
# PIB DVR of pure tissue: CSF, GM, and WM as base + slope * myelin fraction; with partial
# volume and the PET blur, NAWM and control WM measure 1.57-1.60 on the 3 mm grid (PHANTOM.md:
# about 1.5-1.8)
DVR_CSF, DVR_GM, DVR_WM_BASE, DVR_WM_MYELIN = 0.55, 1.05, 0.92, 0.9
# Between t0 and t1 (1-4 months) these shares of the demyelinated / myelinated lesion voxels
# remyelinate / demyelinate: 1 - exp(-rate * months). Calibrated so that the thesis's global
# index (t1 - t0 demyelinated fraction) spans about -0.13 to +0.14 over 18 patients
# (Sec. 4.3.5) while the remyelination index still varies enough to carry EDSS.
REMYELINATION_RATE = (0.003, 0.15)  # per month, log-uniform
DEMYELINATION_RATE = (0.02, 1.0)  # per month, log-uniform
DEMYELINATED_SHARE = (0.6, 0.95)  # of lesion tissue at t0, uniform per patient
FOLLOW_UP_PATCH_MM = 12.0  # size of the coherent patches that change between t0 and t1
EDSS_PER_LOG_RATE = 1.1  # EDSS points lost per e-fold of the remyelination rate
EDSS_NOISE = 0.3  # SD of what else drives disability


def assign_groups(rng: np.random.Generator, n: int) -> list[str]:
    """``MS`` and ``HC`` in the thesis proportions (18:10), in random order, at least one of each."""
    n_ms = int(round(n * PATIENTS_PER_CONTROL / (1 + PATIENTS_PER_CONTROL)))
    n_ms = min(max(n_ms, 1), n - 1)
    groups = ["MS"] * n_ms + ["HC"] * (n - n_ms)
    rng.shuffle(groups)
    return groups


def _loguniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def _lesion_myelin(rng: np.random.Generator, tpl: Template, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Myelin fraction and inflammation of every lesion voxel at t0 (template space).

    Lesion voxels are either demyelinated (myelin about 0.35) or still myelinated (0.86-0.96),
    in coherent patches; the demyelinated share is the patient's, modulated per lesion, and
    each lesion gets exactly its share (the voxels where a smooth field is lowest), so a
    patient with a few small lesions does not drift far from the share drawn for it.
    """
    n = int(labels.max())
    shape, vs = tpl.grid.shape, tpl.voxel_mm
    share = float(rng.uniform(*DEMYELINATED_SHARE))  # this patient's demyelinated share of lesion tissue
    per_lesion = np.clip(share + 0.15 * rng.standard_normal(n + 1), 0.0, 1.0)
    active = rng.random(n + 1) < 0.25
    infl_lesion = np.where(active, rng.uniform(0.3, 1.0, n + 1), 0.0)
    infl_lesion[0] = 0.0
    patches = uniform_field(rng, shape, vs, 8.0)
    level = smooth_noise(rng, shape, vs, 6.0)[0]
    inside = labels > 0
    values, lab = patches[inside], labels[inside].astype(np.int64)
    order = np.lexsort((values, lab))  # by lesion, then by field value
    counts = np.bincount(lab, minlength=n + 1)
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size) - (np.cumsum(counts) - counts)[lab[order]]
    demyelinated = np.zeros(shape, dtype=bool)
    demyelinated[inside] = rank < np.round(per_lesion[lab] * counts[lab])
    myelin = np.full(shape, NAWM_MYELIN, dtype=np.float32)
    myelin[inside] = np.clip(0.9 + 0.03 * level[inside], NORMAL_MYELIN + 0.01, 0.96)
    myelin[demyelinated] = np.clip(0.35 + 0.12 * level[demyelinated], 0.05, 0.7)
    return myelin, infl_lesion[labels].astype(np.float32), share


def _coherent_share(field: np.ndarray, candidates: np.ndarray, share: float) -> np.ndarray:
    """The ``round(share * n)`` of the ``n`` candidate voxels where the smooth ``field`` is lowest.

    Thresholding the field at its candidate quantile keeps the chosen voxels in coherent
    patches while the chosen share is exactly ``share``: with a fixed threshold, the few
    patches covering a small lesion load make the realised share swing far from it.
    """
    values = field[candidates]
    k = int(round(share * values.size))
    if k == 0:
        return np.zeros_like(candidates)
    return candidates & (field <= np.partition(values, k - 1)[k - 1])


def _follow_up(rng: np.random.Generator, tpl: Template, labels: np.ndarray, myelin0: np.ndarray,
               p_remyelinate: float, p_demyelinate: float) -> np.ndarray:
    """Myelin at t1: coherent patches of lesion voxels remyelinate or demyelinate.

    The shares are the probabilities ``p_*``: of the demyelinated lesion voxels, that share
    remyelinates; of the myelinated ones, that share demyelinates.
    """
    shape, vs = tpl.grid.shape, tpl.voxel_mm
    u_r, u_d, level = (uniform_field(rng, shape, vs, FOLLOW_UP_PATCH_MM) for _ in range(3))
    inside = labels > 0
    remyel = _coherent_share(u_r, inside & (myelin0 < NORMAL_MYELIN), p_remyelinate)
    demyel = _coherent_share(u_d, inside & (myelin0 >= NORMAL_MYELIN), p_demyelinate)
    myelin1 = myelin0.copy()
    myelin1[remyel] = 0.9 + 0.1 * level[remyel]
    myelin1[demyel] = 0.15 + 0.4 * level[demyel]
    return myelin1


def _imaging(rng: np.random.Generator, tpl: Template, t: dict[str, np.ndarray], myelin: np.ndarray,
             infl: np.ndarray, factors: np.ndarray) -> dict[str, np.ndarray]:
    """All modalities of one session from warped tissue maps and the session's myelin."""
    gm, wm, csf, brain, lesion, wm_tpl = t["gm"], t["wm"], t["csf"], t["brain"], t["lesion"], t["wm_tpl"]
    vs = tpl.voxel_mm
    shape = brain.shape
    # what MTR and diffusion see: myelin plus other tissue factors (axons, water), not myelin alone
    m_mtr = myelin + 0.12 * factors[0]
    m_dti = myelin + 0.12 * factors[1]

    def noise(sigma: float) -> np.ndarray:
        return np.float32(sigma) * rng.standard_normal(shape, dtype=np.float32)

    out: dict[str, np.ndarray] = {}
    for contrast in STRUCTURAL:
        out[contrast] = structural_mri(contrast, rng, gm, wm, csf, brain, vs, lesion=lesion, myelin=myelin,
                                       inflammation=infl)
    out["MTR"] = (csf * 8.0 + gm * 36.0 + wm * (30.0 + 16.0 * m_mtr - 8.0 * infl) + noise(1.2)) * brain
    fa_wm = (0.25 + 0.3 * wm_tpl**2) * (0.6 + 0.4 * m_dti) * (1.0 - 0.2 * infl)
    out["DTI_FA"] = np.clip(csf * 0.05 + gm * 0.15 + wm * fa_wm + noise(0.02), 0.0, 1.0) * brain
    out["DTI_RD"] = np.clip(csf * 2.8e-3 + gm * 0.75e-3 + wm * (0.45e-3 + 0.5e-3 * (1.0 - m_dti) + 0.3e-3 * infl)
                            + noise(0.03e-3), 0.0, None) * brain
    out["DTI_AD"] = np.clip(csf * 3.0e-3 + gm * 0.95e-3 + wm * (1.25e-3 + 0.25e-3 * infl - 0.15e-3 * (1.0 - m_dti))
                            + noise(0.04e-3), 0.0, None) * brain
    dvr = csf * DVR_CSF + gm * DVR_GM + wm * (DVR_WM_BASE + DVR_WM_MYELIN * myelin)
    dvr = ndimage.gaussian_filter(dvr, PIB_FWHM_MM * FWHM_TO_SIGMA / vs)
    pet_noise = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 1.5 / vs)
    pet_noise *= np.float32(PIB_SESSION_NOISE / max(float(pet_noise.std()), 1e-6))
    out["PIB"] = (dvr + np.float32(PIB_NOISE) * t["pib_fixed"] + pet_noise) * brain
    return {k: v.astype(np.float32) for k, v in out.items()}


def simulate_ms_subject(rng: np.random.Generator, tpl: Template, group: str) -> SimulatedSubject:
    """One subject of cohort ``ms``: sessions t0 and t1 (patients) or t0 (controls).

    Args:
        rng: the subject's own generator.
        tpl: template anatomy on the output grid.
        group: ``MS`` or ``HC``.

    References:
        PHANTOM.md (cohort ms); thesis ch. 4 (PIB DVR, t0/t1, indices, EDSS, Table 4.3);
        Bodini et al., Ann Neurol 2016.
    """
    vs = tpl.voxel_mm
    patient = group == "MS"
    age = float(rng.uniform(*AGE_RANGE))
    sex = str(rng.choice(["F", "M"], p=[0.65, 0.35] if patient else [0.5, 0.5]))
    gm_rate = float(rng.uniform(0.002, 0.004)) + (0.002 if patient else 0.0)
    gm_t, wm_t, csf_t = atrophy(tpl, 1.0 - gm_rate * max(age - 25.0, 0.0), 0.03 * (age - 20.0) + (1.5 if patient else 0.0))

    participant: dict[str, float | int | str] = {"age": round(age, 1), "sex": sex, "group": group}
    shape = tpl.grid.shape
    if patient:
        wm_fraction = float(rng.uniform(0.001, 0.02))
        labels = draw_lesions(rng, tpl, wm_fraction)
        myelin0_t, infl0_t, share = _lesion_myelin(rng, tpl, labels)
        months = float(rng.uniform(1.0, 4.0))
        rho = _loguniform(rng, REMYELINATION_RATE)
        delta = _loguniform(rng, DEMYELINATION_RATE)
        myelin1_t = _follow_up(rng, tpl, labels, myelin0_t, 1.0 - np.exp(-rho * months),
                               1.0 - np.exp(-delta * months))
        infl1_t = infl0_t * np.float32(np.exp(-months / 3.0))
    else:
        labels = np.zeros(shape, dtype=np.int16)
        myelin0_t = np.ones(shape, dtype=np.float32)
        infl0_t = np.zeros(shape, dtype=np.float32)

    warp = random_warp(rng, tpl)
    gm, wm, csf = (warp.apply(m) for m in (gm_t, wm_t, csf_t))
    brain = (gm + wm + csf) > 0.5
    lesion_frac = np.minimum(warp.apply((labels > 0).astype(np.float32)), wm)
    lesions = (lesion_frac >= 0.5) & brain
    nawm = (wm > 0.5) & ~lesions & brain
    tissue = {"gm": gm, "wm": wm, "csf": csf, "brain": brain, "lesion": lesion_frac, "wm_tpl": warp.apply(tpl.wm)}
    factors = smooth_noise(rng, shape, vs, 5.0, n=2)  # the same tissue in both sessions
    fixed = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 1.5 / vs)
    tissue["pib_fixed"] = fixed / np.float32(max(float(fixed.std()), 1e-6))
    wm_any = (wm > 0.05) & brain

    def session(name: str, age_s: float, months_s: float, myelin_t: np.ndarray, infl_t: np.ndarray) -> SimulatedSession:
        myelin = np.clip(warp.apply(myelin_t), 0.0, 1.0)
        myelin[~wm_any] = 0.0
        infl = warp.apply(infl_t)
        images = _imaging(rng, tpl, tissue, myelin, infl, factors)
        images["latent_myelin"] = myelin.astype(np.float32)
        return SimulatedSession(name, round(age_s, 2), {"months": round(months_s, 2)}, images)

    sessions = [session("t0", age, 0.0, myelin0_t, infl0_t)]
    voxel_ml = vs**3 / 1000.0
    if patient:
        sessions.append(session("t1", age + months / 12.0, months, myelin1_t, infl1_t))
        # EDSS: worse with less remyelination, independent of the demyelination rate (thesis Table 4.3)
        centre = np.sqrt(REMYELINATION_RATE[0] * REMYELINATION_RATE[1])
        edss_raw = (3.0 - EDSS_PER_LOG_RATE * np.log(rho / centre) + 0.04 * (age - 33.0)
                    + 15.0 * wm_fraction + EDSS_NOISE * rng.standard_normal())
        edss = float(np.clip(np.round(edss_raw * 2.0) / 2.0, 0.0, 8.0))
        participant.update({
            "EDSS": edss, "remyelination_rate": round(rho, 5), "demyelination_rate": round(delta, 5),
            "interval_months": round(months, 2), "lesion_load_ml": round(float(lesions.sum()) * voxel_ml, 3),
            "n_lesions": int(labels.max()), "lesion_wm_fraction": round(wm_fraction, 5),
            "demyelinated_share": round(share, 4),
        })
    else:
        participant.update({"EDSS": 0.0, "remyelination_rate": "n/a", "demyelination_rate": "n/a",
                            "interval_months": "n/a", "lesion_load_ml": 0.0, "n_lesions": 0,
                            "lesion_wm_fraction": 0.0, "demyelinated_share": "n/a"})
    participant.update({"head_scale": round(warp.scale, 4)})
    for s in sessions:
        s.covariates = {"EDSS": participant["EDSS"], **s.covariates}
    masks = {"brainmask": brain.astype(np.uint8), "GM": gm * brain, "WM": wm * brain, "CSF": csf * brain,
             "lesions": lesions.astype(np.uint8), "NAWM": nawm.astype(np.uint8)}
    return SimulatedSubject(participant, masks, sessions)
