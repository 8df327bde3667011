"""The devnet: `gradswarm demo` and the misbehaving participants it can add (cheating nodes, Sybils).

It drives the product from outside, as a deployment would: processes, run
files, a dev chain, round reports. The product (node/, protocol/, bootstrap/)
never imports it.
"""
