"""e2e: test_predictions' checks on a GBT bundle (`stint train --preset gbt`, xgboost trees): the
predictor serves it through the same bundle API, one Prediction and one Outcome per session, and
the online MAE equals the offline MAE of the same bundle within 1e-6 (the trees see the features
training computed)."""
import sys

import test_predictions

if __name__ == "__main__":
    sys.exit(test_predictions.main("predgbt", "gbt", "--preset", "gbt"))
