"""The primitives: the protocol skeleton, material, shares, and the secure protocol families (products,
truncation, function-secret-sharing keys and gates, bit protocols, comparisons). They know nothing of
the programming interface above them."""
