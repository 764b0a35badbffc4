"""``Microsoft.HybridCompute/privateLinkScopes``: which clusters may reach the control plane through which private
endpoints, the endpoints' connections (approved, rejected), and the names the endpoints answer for."""
