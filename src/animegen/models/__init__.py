"""Model families behind one protocol (:mod:`animegen.models.base`); :mod:`.registry` maps names to them."""
