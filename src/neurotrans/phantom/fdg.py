"""Cohort ``fdg``: the Alzheimer's spectrum (CN / MCI / AD), T1-MRI and FDG-PET in SUVR.

Atrophy (age, disease, regional) is visible on T1; the FDG pattern follows it in part
and in part follows a latent metabolic severity that no MRI shows, so an MRI-only model
has an honest ceiling and age or diagnosis helps.

The tissue maps written as ``GM``, ``WM``, ``CSF`` are segmented from the simulated T1
(:func:`neurotrans.data.segment.segment_tissues` with the smoothed MNI152 prior, as SPM
segmentation is used in the papers), so that tissue-input models see what a real pipeline
gives them; the maps FDG was generated from are written as ``GM_true``, ``WM_true``, ``CSF_true``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from neurotrans.data.segment import mni152_tissue_priors, segment_tissues
from neurotrans.phantom.anatomy import (
    FWHM_TO_SIGMA,
    Template,
    atrophy,
    load_template,
    random_warp,
    smooth_noise,
    smooth_region_map,
)
from neurotrans.phantom.mri import structural_mri
from neurotrans.phantom.subject import SimulatedSession, SimulatedSubject

GROUP_FRACTIONS = {"CN": 0.40, "MCI": 0.35, "AD": 0.25}
GROUP_SEVERITY = {"CN": 0.0, "MCI": 0.45, "AD": 1.0}
AGE_RANGE = (55.0, 90.0)

# extra GM loss at severity 1 (fraction of GM), hippocampus about 20 % (PHANTOM.md: 15-25 % in AD)
REGIONAL_GM_LOSS = 0.20
ATROPHY_WEIGHTS = {"Hippocampus": 1.0, "Amygdala": 0.9, "ParaHippocampal": 0.7, "Fusiform": 0.35,
                   "Temporal_Inf": 0.35, "Temporal_Pole": 0.35, "Cingulate_Post": 0.35, "Precuneus": 0.3}
# GM uptake relative to average cortex (healthy 55-year-old)
GM_UPTAKE = {"Putamen": 1.35, "Caudate": 1.25, "Thalamus": 1.2, "Pallidum": 0.95, "Cingulate_Post": 1.25,
             "Precuneus": 1.2, "Calcarine": 1.3, "Cuneus": 1.2, "Lingual": 1.15, "Occipital": 1.1,
             "Hippocampus": 0.72, "ParaHippocampal": 0.75, "Amygdala": 0.72, "Temporal_Pole": 0.82,
             "Cerebelum": 0.88, "Vermis": 0.88, "Olfactory": 0.8}
CORTEX_UPTAKE = 1.0
UNLABELLED_GM_UPTAKE = 0.9
WM_UPTAKE = 0.28  # GM:WM about 3.6:1
CSF_UPTAKE = 0.02
PONS_UPTAKE = 0.5  # brainstem tissue: cortex / pons about 1.3-1.5, as in pons-normalised ADNI SUVR
# AD hypometabolism at metabolic severity 1 (fraction of uptake): 25 % in posterior cingulate / precuneus
HYPO_AMPLITUDE = 0.25
HYPO_WEIGHTS = {"Cingulate_Post": 1.0, "Precuneus": 1.0, "Parietal_Inf": 0.9, "Angular": 0.9,
                "SupraMarginal": 0.5, "Temporal_Mid": 0.8, "Temporal_Inf": 0.8, "Temporal_Sup": 0.4,
                "Hippocampus": 0.5, "ParaHippocampal": 0.5, "Frontal_Mid": 0.2, "Frontal_Sup_2": 0.2,
                "Frontal_Inf": 0.2}
# aging: anterior cingulate / medial frontal lose about 0.5 %/year after 55
AGING_SLOPE = 0.005
AGING_REGIONS = ("Cingulate_Ant", "Frontal_Sup_Medial", "Frontal_Med_Orb", "OFCmed", "Rectus")
PET_FWHM_MM = 7.0
PET_NOISE = 0.03


def assign_groups(rng: np.random.Generator, n: int) -> list[str]:
    """Groups in the default proportions (about 40/35/25 %), in random order."""
    counts = {g: int(round(f * n)) for g, f in GROUP_FRACTIONS.items()}
    counts["CN"] += n - sum(counts.values())
    groups = [g for g, k in counts.items() for _ in range(max(k, 0))][:n]
    rng.shuffle(groups)
    return groups


@lru_cache(maxsize=4)
def _cohort_maps(voxel_size: float) -> dict[str, np.ndarray]:
    tpl = load_template(voxel_size)
    uptake = smooth_region_map(tpl, {"": CORTEX_UPTAKE, **GM_UPTAKE}, default=UNLABELLED_GM_UPTAKE)
    pons = ndimage.binary_dilation(tpl.pons, iterations=max(1, int(round(6.0 / tpl.voxel_mm))))
    return {
        "uptake": uptake.astype(np.float32),
        "atrophy": smooth_region_map(tpl, ATROPHY_WEIGHTS),
        "hypo": smooth_region_map(tpl, HYPO_WEIGHTS),
        "aging": smooth_region_map(tpl, dict.fromkeys(AGING_REGIONS, 1.0)),
        "pons": ndimage.gaussian_filter(pons.astype(np.float32), 2.0 / tpl.voxel_mm),
        "tissue_prior": mni152_tissue_priors(tpl.grid),
    }


def simulate_fdg_subject(rng: np.random.Generator, tpl: Template, group: str,
                         mri_contrasts: tuple[str, ...] = ()) -> SimulatedSubject:
    """One subject of cohort ``fdg``: T1w (and asked-for MRI contrasts), FDG SUVR, masks.

    Args:
        rng: the subject's own generator.
        tpl: template anatomy on the output grid.
        group: ``CN``, ``MCI`` or ``AD``.
        mri_contrasts: extra structural contrasts (``T2w PDw FLAIR DIR T1SE``).

    References:
        PHANTOM.md (cohort fdg); Mosconi 2005 and Minoshima 1997 for the AD pattern.
    """
    maps = _cohort_maps(tpl.voxel_mm)
    vs = tpl.voxel_mm
    age = float(rng.uniform(*AGE_RANGE))
    sex = str(rng.choice(["F", "M"]))
    base = GROUP_SEVERITY[group]
    z = rng.standard_normal(4)
    sev_atrophy = max(0.0, base * (1.0 + 0.25 * z[0]) + 0.04 * z[1])
    sev_hidden = max(0.0, base + 0.3 * z[2])  # the latent part: invisible on T1
    sev_metab = 0.5 * sev_atrophy + 0.5 * sev_hidden
    gm_rate = float(rng.uniform(0.003, 0.005))

    # atrophy in template space, then one deformation for every map
    global_keep = 1.0 - gm_rate * (age - 40.0)
    gm_keep = global_keep * (1.0 - REGIONAL_GM_LOSS * sev_atrophy * maps["atrophy"])
    ventricle_mm = 0.03 * (age - 40.0) + 1.5 * sev_atrophy
    gm_t, wm_t, csf_t = atrophy(tpl, gm_keep, ventricle_mm)

    relative = (1.0 - HYPO_AMPLITUDE * sev_metab * maps["hypo"])
    relative = relative * (1.0 - AGING_SLOPE * (age - AGE_RANGE[0]) * maps["aging"]) * (1.0 - 0.001 * (age - 55.0))
    relative = relative * (1.0 + 0.04 * smooth_noise(rng, tpl.grid.shape, vs, 40.0)[0])
    activity = gm_t * (maps["uptake"] * relative) + wm_t * WM_UPTAKE + csf_t * CSF_UPTAKE
    activity = activity * (1.0 - maps["pons"]) + maps["pons"] * PONS_UPTAKE * (gm_t + wm_t)

    warp = random_warp(rng, tpl)
    gm, wm, csf = (warp.apply(m) for m in (gm_t, wm_t, csf_t))
    brain = (gm + wm + csf) > 0.5
    hypo = warp.apply(1.0 - relative) * brain

    psf = PET_FWHM_MM * FWHM_TO_SIGMA / vs
    pet = ndimage.gaussian_filter(warp.apply(activity), psf)
    # reconstructed PET noise is correlated over the resolution of the scanner
    noise = ndimage.gaussian_filter(rng.standard_normal(pet.shape, dtype=np.float32), psf)
    noise *= np.float32(PET_NOISE * float(pet[brain].mean()) / max(float(noise.std()), 1e-6))
    pet = (pet + noise) * brain
    # the reference is pons tissue: residual misregistration must not put CSF into it
    ref = tpl.pons & brain & ((gm + wm) > 0.5)
    if not ref.any():
        ref = tpl.pons & brain
    suvr = pet / np.float32(pet[ref].mean())

    images = {"T1w": structural_mri("T1w", rng, gm, wm, csf, brain, vs)}
    for contrast in mri_contrasts:
        if contrast != "T1w":
            images[contrast] = structural_mri(contrast, rng, gm, wm, csf, brain, vs)
    images["FDG"] = suvr.astype(np.float32)
    images["latent_hypometabolism"] = hypo.astype(np.float32)

    mmse = int(np.clip(np.round(29.5 - 7.5 * sev_metab - 0.03 * (age - 70.0) + z[3]), 0, 30))
    participant = {
        "age": round(age, 1), "sex": sex, "group": group, "MMSE": mmse,
        "atrophy_severity": round(sev_atrophy, 4), "metabolic_severity": round(sev_metab, 4),
        "hidden_metabolic_factor": round(sev_hidden, 4), "gm_loss_rate_per_year": round(gm_rate, 5),
        "head_scale": round(warp.scale, 4),
    }
    seg_csf, seg_gm, seg_wm = segment_tissues(images["T1w"], brain, prior=maps["tissue_prior"])
    masks = {"brainmask": brain.astype(np.uint8), "GM": seg_gm, "WM": seg_wm, "CSF": seg_csf,
             "GM_true": gm * brain, "WM_true": wm * brain, "CSF_true": csf * brain}
    session = SimulatedSession("baseline", round(age, 1), {"MMSE": mmse}, images)
    return SimulatedSubject(participant, masks, [session])
