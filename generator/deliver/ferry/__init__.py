"""The ferry: signed git-bundle envelopes carried through a one-way gatekeeper.

    pack (outside)                            import (inside)
    deploy/<site> ──► envelope <site>-<seq>/ ──► verify ──► quarantine ref ──► deploy/<site>
                      bundle                    signature, hashes, site,      commit signatures,
                      manifest.json             sequence, expiry, basis       one atomic ref update
                      manifest.json.sig

``envelope`` is the format, ``ledger`` what each side remembers (``refs/ferry/sent/<site>`` and
``refs/ferry/imported/<site>``), ``pack`` and ``receive`` the two ends, ``status`` the summary,
``transport`` how envelopes travel: the ``Transport`` protocol and the drop directory (``DropDir``);
a new transport implements the protocol and the CLI builds it from its options.
Depends only on ``generator.core`` and ``generator.deliver.git``; never on the compiler.
"""
