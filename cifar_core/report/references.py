"""The published numbers this study is compared against.

Report A's (test accuracy and parameter counts of CNN6/CNN7/CNN2, and the published results it
cites) live with the retrain stage that reproduces them; report B's are here.
"""

from cifar_core.retrain import PUBLISHED, REPORT_A

# Report B, part 1: resdw under a 100,000-parameter budget.
REPORT_B_BUDGET = 100_000
REPORT_B_RESDW_PCT = 56.9
REPORT_B_RESDW_PARAMETERS = 98_068
# Report B, part 2: the DCGAN's FID against the CIFAR-100 test set, at its step-46,000 snapshot.
REPORT_B_FID = 46.85
REPORT_B_FID_STEP = 46_000
REPORT_B_GAN_PARAMETERS = {"generator": 635_812, "discriminator": 344_264, "total": 980_076}

__all__ = [
    "PUBLISHED",
    "REPORT_A",
    "REPORT_B_BUDGET",
    "REPORT_B_FID",
    "REPORT_B_FID_STEP",
    "REPORT_B_GAN_PARAMETERS",
    "REPORT_B_RESDW_PARAMETERS",
    "REPORT_B_RESDW_PCT",
]
