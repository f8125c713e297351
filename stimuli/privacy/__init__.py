"""The privacy audit of a release: attacks on members and on a control of non-members.

`criteria` judges one person split (the `privacy` stage), `verdict` pools K splits
(`python -m stimuli.audit`). `attribution`, `membership` and `linkage` are the earlier
attacks that experiments/ still run as diagnostics.
"""
