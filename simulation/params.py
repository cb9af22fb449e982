"""Every number of the simulator, in one place, with its source or its reason.

Tables are keyed by the contract's category names (`data_contracts.fields.BY_NAME`);
`model.py` turns them into arrays in the contract's category order and checks that
every category has a value. simulation/README.md explains each block.
"""

from __future__ import annotations

# --------------------------------------------------------------------------------------
# Sites and case mix
# --------------------------------------------------------------------------------------
# Condition mix of the single pooled site (n_sites=1): a crossover study that recruits
# pain-free controls and the four chronic pain conditions of the contract.
POOLED_MIX = {
    "chronic_low_back_pain": 0.25,
    "knee_osteoarthritis": 0.15,
    "chronic_neck_pain": 0.15,
    "fibromyalgia": 0.15,
    "pain_free": 0.30,
}

# Site archetypes for n_sites >= 2 (cycled; from the 5th site on the mix is jittered with
# a Dirichlet draw around the archetype). Sites differ in case mix (conditions, age,
# psychology) and in which optional measures they record; the outcome mechanism is the
# same at every site.
#   mix: condition proportions; age_shift: years added to every age; psych_shift: SD units
#   added to catastrophizing/fear and subtracted from self-efficacy; observe: multipliers
#   of the probability that an optional measure is recorded.
SITE_ARCHETYPES = (
    {
        "name": "university_lab",
        "mix": {"chronic_low_back_pain": 0.20, "knee_osteoarthritis": 0.05, "chronic_neck_pain": 0.10,
                "fibromyalgia": 0.10, "pain_free": 0.55},
        "age_shift": -5.0, "psych_shift": -0.2,
        "observe": {"ts": 2.0, "blood": 2.2, "lactate": 2.0, "mechanism": 1.0, "hads": 0.9, "expectation": 1.4},
    },
    {
        "name": "pain_clinic",
        "mix": {"chronic_low_back_pain": 0.35, "knee_osteoarthritis": 0.10, "chronic_neck_pain": 0.20,
                "fibromyalgia": 0.25, "pain_free": 0.10},
        "age_shift": 0.0, "psych_shift": 0.3,
        "observe": {"ts": 0.6, "blood": 0.5, "lactate": 0.4, "mechanism": 1.4, "hads": 1.4, "expectation": 1.0},
    },
    {
        "name": "orthopaedic_rehab",
        "mix": {"chronic_low_back_pain": 0.20, "knee_osteoarthritis": 0.45, "chronic_neck_pain": 0.10,
                "fibromyalgia": 0.05, "pain_free": 0.20},
        "age_shift": 5.0, "psych_shift": 0.0,
        "observe": {"ts": 0.8, "blood": 1.0, "lactate": 0.8, "mechanism": 0.8, "hads": 0.8, "expectation": 0.8},
    },
    {
        "name": "primary_care_physio",
        "mix": {"chronic_low_back_pain": 0.35, "knee_osteoarthritis": 0.15, "chronic_neck_pain": 0.20,
                "fibromyalgia": 0.05, "pain_free": 0.25},
        "age_shift": 0.0, "psych_shift": -0.1,
        "observe": {"ts": 0.3, "blood": 0.3, "lactate": 0.5, "mechanism": 0.6, "hads": 1.0, "expectation": 0.8},
    },
)
SITE_JITTER_CONCENTRATION = 60.0  # Dirichlet concentration for sites beyond the 4 archetypes

# --------------------------------------------------------------------------------------
# Required person fields (always recorded), by condition
# --------------------------------------------------------------------------------------
AGE = {  # mean, SD in years; drawn normal, clipped 18-90, whole years
    "chronic_low_back_pain": (46.0, 13.0),
    "knee_osteoarthritis": (64.0, 9.0),
    "chronic_neck_pain": (45.0, 12.0),
    "fibromyalgia": (49.0, 11.0),
    "pain_free": (38.0, 14.0),
}
P_FEMALE = {
    "chronic_low_back_pain": 0.55,
    "knee_osteoarthritis": 0.62,
    "chronic_neck_pain": 0.68,
    "fibromyalgia": 0.92,
    "pain_free": 0.52,
}
DURATION_MEDIAN_MONTHS = {  # lognormal, log-SD 0.9, clipped 3-600, whole months; pain_free 0
    "chronic_low_back_pain": 60.0,
    "knee_osteoarthritis": 72.0,
    "chronic_neck_pain": 48.0,
    "fibromyalgia": 96.0,
    "pain_free": 0.0,
}
DURATION_LOG_SD = 0.9
NRS = {  # mean, SD of average pain (0-10), whole points; pain_free report 0
    "chronic_low_back_pain": (6.5, 1.6),
    "knee_osteoarthritis": (6.1, 1.6),
    "chronic_neck_pain": (6.2, 1.6),
    "fibromyalgia": (7.0, 1.5),
    "pain_free": (0.0, 0.0),
}
# Psychology: (mean, SD) of PCS 0-52, TSK-17 17-68, PSEQ 0-60 (whole points, clipped).
# Chronic pain means are set so that the pooled chronic-pain rows reproduce Nicholas et al.
# 2019 (PCS ~30, PSEQ ~21); pain-free controls score low on PCS/TSK and near ceiling on PSEQ.
PCS = {
    "chronic_low_back_pain": (30.0, 11.0),
    "knee_osteoarthritis": (26.0, 11.0),
    "chronic_neck_pain": (29.0, 11.0),
    "fibromyalgia": (34.0, 11.0),
    "pain_free": (8.0, 7.0),
}
TSK = {
    "chronic_low_back_pain": (41.0, 7.0),
    "knee_osteoarthritis": (39.0, 7.0),
    "chronic_neck_pain": (40.0, 7.0),
    "fibromyalgia": (42.0, 7.0),
    "pain_free": (31.0, 6.0),
}
PSEQ = {
    "chronic_low_back_pain": (21.0, 12.0),
    "knee_osteoarthritis": (26.0, 12.0),
    "chronic_neck_pain": (23.0, 12.0),
    "fibromyalgia": (16.0, 11.0),
    "pain_free": (54.0, 6.0),
}
PSYCH_CORR = ((1.0, 0.50, -0.50), (0.50, 1.0, -0.45), (-0.50, -0.45, 1.0))  # PCS, TSK, PSEQ
CPM = {  # mean, SD of CPM (% PPT change under conditioning; + = inhibition), 0.1 % precision
    "chronic_low_back_pain": (15.0, 25.0),
    "knee_osteoarthritis": (12.0, 25.0),
    "chronic_neck_pain": (14.0, 25.0),
    "fibromyalgia": (3.0, 25.0),
    "pain_free": (28.0, 22.0),
}
# Baseline PPT: lognormal, median for women (men x1.25), log-SD within condition and sex;
# clipped 55-1950 kPa, whole kPa. Widespread hyperalgesia lowers PPT most in fibromyalgia.
PPT_MEDIAN_FEMALE = {
    "chronic_low_back_pain": 330.0,
    "knee_osteoarthritis": 320.0,
    "chronic_neck_pain": 300.0,
    "fibromyalgia": 190.0,
    "pain_free": 400.0,
}
PPT_MALE_FACTOR = 1.25
PPT_LOG_SD = {
    "chronic_low_back_pain": 0.30,
    "knee_osteoarthritis": 0.30,
    "chronic_neck_pain": 0.30,
    "fibromyalgia": 0.36,
    "pain_free": 0.27,
}
# Measurement error of one PPT reading (fraction of PPT); Aron et al. 2024 report 10-21 %.
# Set near the middle of that range at the reference site (sites scale it, SITE_NOISE).
PPT_SEM = {
    "chronic_low_back_pain": 0.15,
    "knee_osteoarthritis": 0.15,
    "chronic_neck_pain": 0.15,
    "fibromyalgia": 0.16,
    "pain_free": 0.13,
}
# True person-by-bout variation of EIH that no recorded field explains (SD, % points).
EIH_UNEXPLAINED_SD = 6.0

# Pain mechanism given condition (pain_free: always none)
MECHANISM = {
    "chronic_low_back_pain": {"nociceptive": 0.45, "neuropathic": 0.20, "nociplastic": 0.15, "mixed": 0.20, "none": 0.0},
    "knee_osteoarthritis": {"nociceptive": 0.65, "neuropathic": 0.05, "nociplastic": 0.15, "mixed": 0.15, "none": 0.0},
    "chronic_neck_pain": {"nociceptive": 0.45, "neuropathic": 0.15, "nociplastic": 0.20, "mixed": 0.20, "none": 0.0},
    "fibromyalgia": {"nociceptive": 0.03, "neuropathic": 0.02, "nociplastic": 0.85, "mixed": 0.10, "none": 0.0},
    "pain_free": {"nociceptive": 0.0, "neuropathic": 0.0, "nociplastic": 0.0, "mixed": 0.0, "none": 1.0},
}

# --------------------------------------------------------------------------------------
# Exercise protocol: randomized within plausible ranges (crossover-style assignment)
# --------------------------------------------------------------------------------------
MODALITY_P = {"aerobic": 0.30, "isometric": 0.20, "dynamic_resistance": 0.20, "hiit": 0.15, "mind_body": 0.15}
INTENSITY_RANGE = {  # uniform, whole %
    "aerobic": (45, 95),  # % HRmax (the contract's unit), about 13-91 % VO2max (Swain 1994)
    "isometric": (20, 80),  # % MVC
    "dynamic_resistance": (30, 85),  # % 1RM
    "hiit": (80, 100),  # % HRmax
    "mind_body": (35, 65),  # % HRmax: yoga and tai chi sit near light-to-moderate effort
}
DURATION_RANGE = {  # uniform, whole minutes
    "aerobic": (5, 45),
    "isometric": (1, 10),
    "dynamic_resistance": (5, 30),
    "hiit": (10, 30),
    "mind_body": (10, 60),
}

# --------------------------------------------------------------------------------------
# Latent traits: F1 central sensitization, F2 affective distress (never recorded)
# --------------------------------------------------------------------------------------
# Conditional on the required fields they are bivariate normal with these SDs and correlation;
# their means are linear in the reported required fields (see model.factor_means).
F_SD = (0.75, 0.75)
F_CORR = 0.30
F1_COND = {"chronic_low_back_pain": 0.5, "knee_osteoarthritis": 0.4, "chronic_neck_pain": 0.5,
           "fibromyalgia": 1.6, "pain_free": 0.4}
F1_MECH = {"nociceptive": -0.15, "neuropathic": 0.05, "nociplastic": 0.6, "mixed": 0.25, "none": 0.0}
F1_COEF = {"cpm": -0.25, "pcs": 0.12, "nrs": 0.04, "ppt_dev": -0.15}
F2_COND = {"chronic_low_back_pain": 0.2, "knee_osteoarthritis": 0.1, "chronic_neck_pain": 0.2,
           "fibromyalgia": 0.4, "pain_free": 0.0}
F2_COEF = {"pcs": 0.40, "tsk": 0.15}

# Standardization of the required fields inside the structural equations
STD = {"cpm": (20.0, 25.0), "age": (40.0, 15.0), "pcs": (20.0, 11.0), "tsk": (37.0, 7.0), "pseq": (35.0, 13.0)}

# --------------------------------------------------------------------------------------
# Optional numeric fields: each is an invertible transform of one latent z_k,
#   z_k = c_k(required, mechanism) + l1*F1 + l2*F2 + psi*u_k,   u_k ~ N(0,1) independent,
# reported as lo + (hi-lo)*sigmoid(a + b z) (or the same on the log scale), which stays
# strictly inside the contract range, so an observed value gives back z_k exactly.
# --------------------------------------------------------------------------------------
INDICATORS = {
    # field: loadings (F1, F2), psi, transform (lo, hi, log-scale, a, b)
    "bmi_kg_m2": {"load": (0.0, 0.0), "psi": 1.0, "tf": (12.0, 70.0, False, -1.10, 0.42)},
    "csi_score": {"load": (0.60, 0.35), "psi": 0.55, "tf": (0.0, 100.0, False, -1.00, 0.75)},
    "paindetect_score": {"load": (0.45, 0.10), "psi": 0.75, "tf": (-1.0, 38.0, False, -0.85, 0.85)},
    "temporal_summation_nrs": {"load": (0.45, 0.0), "psi": 0.85, "tf": (-10.0, 10.0, False, 0.20, 0.30)},
    "hads_anxiety": {"load": (0.10, 0.70), "psi": 0.60, "tf": (0.0, 21.0, False, -0.95, 0.90)},
    "hads_depression": {"load": (0.05, 0.65), "psi": 0.65, "tf": (0.0, 21.0, False, -1.15, 0.90)},
    "expected_pain_change_nrs": {"load": (0.15, 0.30), "psi": 0.90, "tf": (-10.0, 10.0, False, -0.20, 0.40)},
    "bdnf_ng_ml": {"load": (0.15, 0.0), "psi": 0.95, "tf": None},  # transform by matrix, below
    "lactate_mmol_l": {"load": (0.0, 0.0), "psi": 1.0, "tf": None},  # transform by protocol, below
    "il6_pg_ml": {"load": (0.15, 0.0), "psi": 0.95, "tf": (0.05, 500.0, True, -0.40, 0.27)},
}
# Intercepts c_k by condition (added to the factor part) and extra terms
INDICATOR_COND = {
    "bmi_kg_m2": {"chronic_low_back_pain": 0.3, "knee_osteoarthritis": 0.7, "chronic_neck_pain": 0.1,
                  "fibromyalgia": 0.4, "pain_free": 0.0},
    "csi_score": {"chronic_low_back_pain": 0.3, "knee_osteoarthritis": 0.1, "chronic_neck_pain": 0.3,
                  "fibromyalgia": 0.6, "pain_free": 0.0},
    "paindetect_score": {"chronic_low_back_pain": 0.0, "knee_osteoarthritis": -0.3, "chronic_neck_pain": 0.0,
                         "fibromyalgia": 0.3, "pain_free": -1.5},
    "temporal_summation_nrs": {"chronic_low_back_pain": 0.0, "knee_osteoarthritis": 0.0,
                               "chronic_neck_pain": 0.0, "fibromyalgia": 0.3, "pain_free": 0.0},
    "hads_anxiety": {"chronic_low_back_pain": 0.0, "knee_osteoarthritis": 0.0, "chronic_neck_pain": 0.0,
                     "fibromyalgia": 0.2, "pain_free": 0.0},
    "hads_depression": {"chronic_low_back_pain": 0.0, "knee_osteoarthritis": 0.0, "chronic_neck_pain": 0.0,
                        "fibromyalgia": 0.2, "pain_free": 0.0},
    "expected_pain_change_nrs": {"chronic_low_back_pain": 0.2, "knee_osteoarthritis": 0.1,
                                 "chronic_neck_pain": 0.2, "fibromyalgia": 0.4, "pain_free": -0.3},
    "bdnf_ng_ml": {"chronic_low_back_pain": 0.0, "knee_osteoarthritis": 0.0, "chronic_neck_pain": 0.0,
                   "fibromyalgia": 0.5, "pain_free": 0.0},
    "lactate_mmol_l": {"chronic_low_back_pain": 0.0, "knee_osteoarthritis": 0.0, "chronic_neck_pain": 0.0,
                       "fibromyalgia": 0.0, "pain_free": 0.0},
    "il6_pg_ml": {"chronic_low_back_pain": 0.2, "knee_osteoarthritis": 0.4, "chronic_neck_pain": 0.1,
                  "fibromyalgia": 0.3, "pain_free": 0.0},
}
INDICATOR_EXTRA = {  # linear terms in the standardized required fields
    "bmi_kg_m2": {"age": 0.15},
    "expected_pain_change_nrs": {"tsk": 0.15},
}
PAINDETECT_MECH = {"nociceptive": -0.3, "neuropathic": 1.2, "nociplastic": 0.2, "mixed": 0.6, "none": 0.0}

# BDNF by matrix: serum (healthy 32.7 +/- 8.3 ng/mL, Naegelin et al. 2018) and plasma
# (far lower, strictly below the contract's 5 ng/mL plausibility limit)
BDNF_TF = {"serum": (0.01, 100.0, False, -0.73, 0.40), "plasma": (0.01, 5.0, False, -0.85, 0.55)}
# Acute exercise raises serum BDNF (Szuhany et al. 2015: g ~0.46 after a single bout);
# latent shift at the reference aerobic bout. Not a contract field; used by the report only.
BDNF_ACUTE_SHIFT = 0.45
BDNF_ACUTE_NOISE = 0.35

# Lactate right after the bout: log-scale logistic in (0.3, 30) mmol/L around a protocol
# median; resting median 1.1 mmol/L (Jouffroy et al. 2022: 1-2 at rest).
LACTATE_REST = 1.1
LACTATE_B = 0.30
LACTATE_RISE = {  # log-fold rise of the median at full ramp, by modality
    "aerobic": 1.85,  # ~7 mmol/L near 90 % HRmax
    "isometric": 0.55,
    "dynamic_resistance": 1.35,
    "hiit": 2.25,
    "mind_body": 0.25,
}

# --------------------------------------------------------------------------------------
# Outcome: phys = G(p)*R - H(p)*S + beta_lac*z_lac + sigma*eps; the site layer (sites.py) adds
# fade, response shift and the two readings' errors (regression to the mean)
# --------------------------------------------------------------------------------------
# G: EIH gain of the protocol for a responsive person (% points); H: load sensitivity
# (% points lost per unit of sensitization S). See model.protocol_terms for the shapes.
GAIN = {"aerobic": 18.0, "isometric": 29.0, "dynamic_resistance": 31.0, "hiit": 14.0, "mind_body": 5.0}
LOAD = {"aerobic": 13.0, "isometric": 13.0, "dynamic_resistance": 9.0, "hiit": 14.0, "mind_body": 0.0}

# Responsiveness R = 1 + R_COND + sum R_COEF * z(required) + R_F . F + R_EXP * z_exp
R_COND = {"chronic_low_back_pain": 0.0, "knee_osteoarthritis": 0.0, "chronic_neck_pain": 0.0,
          "fibromyalgia": -0.45, "pain_free": 0.0}
R_COEF = {"cpm": 0.08, "age": -0.05, "pcs": -0.03, "tsk": -0.02, "pseq": 0.02, "male": 0.0}
R_F = (-0.06, -0.04)
R_EXP = -0.05
R_LACTATE = 0.02  # achieved effort above the prescription raises EIH a little (per SD of lactate)
# Sensitization S = S_COEF * z(required) + S_F . F
S_COEF = {"cpm": -0.08, "pcs": 0.04}
S_F = (0.45, 0.10)

# Reference protocols (virtual crossover in the calibration report)
REFERENCE_PROTOCOLS = {
    "aerobic": (80.0, 30.0),  # % HRmax, about 67 % VO2max
    "isometric": (30.0, 3.0),
    "dynamic_resistance": (60.0, 15.0),
    "hiit": (90.0, 20.0),
    "mind_body": (40.0, 30.0),
}

# --------------------------------------------------------------------------------------
# Missingness (probability that a value is recorded); MCAR within site and condition
# --------------------------------------------------------------------------------------
OBSERVE = {
    "bmi": 0.85,
    "mechanism": 0.60,  # pain conditions; pain_free records 'none' with OBSERVE_NONE
    "csi": 0.70,
    "paindetect": 0.55,  # pain conditions only; pain-free people are not given painDETECT
    "ts": 0.35,
    "hads": 0.65,  # both subscales together
    "hads_single_missing": 0.03,  # one subscale left blank
    "expectation": 0.45,
    "blood": 0.20,  # a resting blood draw at all
    "bdnf_given_blood": 0.80,
    "il6_given_blood": 0.90,
    "lactate": 0.25,
}
OBSERVE_NONE = 0.5
SERUM_SHARE = 0.70

# --------------------------------------------------------------------------------------
# Intensity units (target 15). The contract records aerobic, HIIT and mind-body intensity
# in % of maximal heart rate; Hoffman et al. 2004 published the aerobic thresholds in % of
# VO2max. Swain et al. 1994 (MSSE 26:112): %HRmax = 0.64 x %VO2max + 37.
# features/derived.py keeps its own copy of these two numbers (it may not import the
# simulator); tests/test_sim2_units.py asserts that the copies agree.
# --------------------------------------------------------------------------------------
SWAIN_SLOPE = 0.64
SWAIN_INTERCEPT = 37.0
AEROBIC_VO2_ONSET = 50.0  # % VO2max: no EIH at or below (Hoffman 2004, 30 min)
AEROBIC_VO2_FULL = 75.0  # % VO2max: clear EIH at 30 min (Hoffman 2004)


def hrmax_from_vo2max(pct_vo2max):
    """% of maximal heart rate at a given % of VO2max (Swain et al. 1994)."""
    return SWAIN_SLOPE * pct_vo2max + SWAIN_INTERCEPT


def vo2max_from_hrmax(pct_hrmax):
    """% of VO2max at a given % of maximal heart rate (inverse of Swain et al. 1994)."""
    return (pct_hrmax - SWAIN_INTERCEPT) / SWAIN_SLOPE


# --------------------------------------------------------------------------------------
# Conditioned pain modulation in chronic pain (target 16): in people with chronic pain an
# impaired CPM goes with a loss of PPT after aerobic and isometric exercise, a normal CPM
# with a gain (Fingleton et al. 2017, knee osteoarthritis). Extra terms for chronic pain; the
# pain-free coefficients above stay small (CPM and EIH correlate only loosely there).
# Sized (assumption) so that the impaired group's mean is negative and the normal group's
# positive while the person-alone R2 stays under 0.20 (target 9a).
# --------------------------------------------------------------------------------------
S_CHRONIC = 0.6  # sensitization offset of every chronic pain condition
S_CPM_IMPAIRED = 0.8  # chronic pain: extra sensitization per 25 % of CPM below 0 (impaired CPM)
AEROBIC_LOAD_VO2 = (45.0, 90.0, 1.3)  # aerobic load sensitivity: ramp(% VO2max, lo, hi) ** power

# --------------------------------------------------------------------------------------
# Day-to-day structure (target 14, test-retest). The unexplained person-by-bout SD above
# splits into a part stable across days for the same person and protocol and a part that
# is new every day (sqrt(4^2 + 4.47^2) = 6). Assumption: no published split; an equal
# split keeps the implied ICC and kappa inside Aron et al. 2024 (checked by the report).
# --------------------------------------------------------------------------------------
EIH_PERSON_SD = 4.0
EIH_DAY_SD = (EIH_UNEXPLAINED_SD**2 - EIH_PERSON_SD**2) ** 0.5

# --------------------------------------------------------------------------------------
# Site effects (target 17). No published size: each range is an assumption.
# A simulated site (with --sites >= 2) takes one of SITE_PROFILES equally likely profiles,
# a Latin hypercube over the three ranges below (a finite prior keeps the new-site oracle
# an exact finite mixture), plus a continuous shift of the mean response.
#   scale: algometer and examiner read every PPT x exp(log_scale); examiners and devices
#     differ by roughly 10-20 % in PPT.
#   noise: the SEM of one PPT reading x noise (the reference SEMs 13-16 % become about
#     10-21 %, the range of Aron et al. 2024).
#   delay: minutes between the end of the bout and the post-bout PPT; EIH fades as
#     exp(-(delay - reference) / EIH_FADE_MIN), i.e. a half-life of about 14 min, so that
#     it is mostly gone after 30-45 min ("fades within minutes to about half an hour").
#   response shift: added to responsiveness R (x the protocol's gain), SD 0.10 (range 0.05-0.2).
# With --sites 1 the one site is the reference site: scale 1, noise 1, delay 2 min, no shift
# (the conditions of the published laboratory studies the 13 first targets come from).
# --------------------------------------------------------------------------------------
SITE_PROFILES = 8
SITE_LOG_SCALE = (-0.15, 0.15)
SITE_NOISE = (0.8, 1.3)
SITE_DELAY_MIN = (0.0, 15.0)
REFERENCE_DELAY_MIN = 2.0
EIH_FADE_MIN = 20.0
SITE_RESPONSE_SD = 0.10
SITE_PROFILE_SEED = 2025_13  # fixes the Latin hypercube (part of the model, not of a cohort)

# --------------------------------------------------------------------------------------
# Worlds (target 18): parameters the literature leaves open are drawn per simulated world
# from wide priors; world 0 is the central world (each prior's centre). Within a world the
# oracle is exact; across worlds the truth itself differs.
#   (centre, SD, low, high): normal around the centre, clipped to [low, high].
# HIIT: no acute EIH data; centred on the aerobic gain at high intensity and on the
# highest load sensitivity of the set. Mind-body: a small gain, load sensitivity centred on
# none. Sex: evidence on sex differences in EIH is mixed (centre 0).
# Gains and load sensitivities stay >= 0 so that the published directions hold in every world.
# --------------------------------------------------------------------------------------
WORLD_PRIORS = {
    ("gain", "hiit"): (14.0, 8.0, 0.0, 35.0),
    ("load", "hiit"): (14.0, 5.0, 0.0, 30.0),
    ("gain", "mind_body"): (5.0, 5.0, 0.0, 20.0),
    ("load", "mind_body"): (0.0, 3.0, 0.0, 8.0),
    ("r_male", None): (0.0, 0.05, -0.15, 0.15),
}
WORLD_SEED = 1813
