"""e2e: test_predictions' checks on a bundle of three networks (`stint train --members 3`, the
default LSTM(32) from three seeds): the predictor serves their mean through the same bundle API,
one Prediction and one Outcome per session, and the online MAE equals the offline MAE of the same
bundle within 1e-6."""
import sys

import test_predictions

if __name__ == "__main__":
    sys.exit(test_predictions.main("predmem", "seq", "--members", "3", members=3))
