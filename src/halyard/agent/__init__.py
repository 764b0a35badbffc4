"""The in-cluster agents: one module per agent, each a level-triggered reconcile loop, run by the controller manager.

They talk to the cluster through lightkube and to the control plane only outbound, over HTTPS, with tokens the
identity operator mints from the cluster certificate. They never import the control plane or the store.
"""
