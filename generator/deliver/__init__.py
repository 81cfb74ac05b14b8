"""Deliver: from the reviewed compiled/ tree to the site's repository, across the air gap.

    git/        the git layer (repositories, objects, bundles, signatures)
    publish     compiled/<site>/ -> signed commits on deploy/<site>
    ferry/      signed bundle envelopes through the one-way gatekeeper (pack outside, import inside)

Never imports the compiler (``generator.build``).
"""
