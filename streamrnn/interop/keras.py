def from_keras(*a, **k): raise NotImplementedError
