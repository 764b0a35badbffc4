"""The part of ``Microsoft.Network`` private link needs: networks the operator registers (virtual networks and
subnets), private endpoints with their addresses, and private DNS zones (links, A record sets, zone groups)."""
