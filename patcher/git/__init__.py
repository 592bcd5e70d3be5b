"""Git: living in a fork across upstream releases.

``repo`` is the git plumbing; ``setup`` registers the merge driver and the post-merge hook (``bbpatch
git-setup``); ``merge`` is the driver (merge upstream's unpatched sources, patch the result); ``resolve``
settles a conflicted merge; ``post_merge`` brings the manifest up to date after a merge.
"""
