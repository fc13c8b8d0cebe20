"""The paper's "c" setting: a softmax classifier trained on the face embeddings of the enrolled.

Its probability is a softmax over the enrolled people only, so it must name somebody: the
evaluation keeps it beside the cosine recogniser to show what such an "80% confidence" does
when a stranger comes to the door.
"""

from __future__ import annotations

import numpy as np

NAME = "face-softmax"
# Near-unregularised, like a linear head trained to convergence with cross-entropy.
INVERSE_REGULARISATION = 100.0


class SoftmaxBaseline:
    def __init__(self, features: np.ndarray, labels: list[str]):
        from sklearn.linear_model import LogisticRegression

        self.people = sorted(set(labels))
        if len(self.people) < 2:
            raise ValueError("a softmax classifier needs at least two enrolled people")
        self._model = LogisticRegression(C=INVERSE_REGULARISATION, max_iter=2000).fit(features, labels)
        self.train_accuracy = float(self._model.score(features, labels))

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(n, people) softmax probabilities, columns in ``self.people`` order."""
        if len(features) == 0:
            return np.zeros((0, len(self.people)))
        probs = self._model.predict_proba(features)
        order = [list(self._model.classes_).index(p) for p in self.people]
        return probs[:, order]
