"""GCP network: a custom-mode VPC with one regional subnet for GKE (pods and services on
secondary ranges), Private Google Access, Cloud NAT behind a Cloud Router, subnet flow logs,
private service access for Cloud SQL and Memorystore, and a logged deny-all ingress rule
underneath the few allows the cluster needs."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.contracts import NetworkOutputs, contract_outputs

PODS_RANGE = "pods"
SERVICES_RANGE = "services"


@dataclass(frozen=True)
class NetworkArgs:
    project: str
    region: str
    nodes_cidr: str
    """The subnet's primary range (nodes)."""
    pods_cidr: str
    services_cidr: str
    private_services_cidr: str
    """Reserved for private service access (Cloud SQL, Memorystore peering)."""
    control_plane_cidr: str
    """The GKE control plane's /28 (allowed to reach nodes for webhooks)."""


class Network(pulumi.ComponentResource):
    """VPC, subnet, NAT, private service access and firewall. Type token `dex:gcp:Network`."""

    network_id: pulumi.Output[str]
    network_self_link: pulumi.Output[str]
    subnet_self_link: pulumi.Output[str]
    private_services_connection: gcp.servicenetworking.Connection
    """What Cloud SQL and Memorystore must wait for."""
    contract: NetworkOutputs

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:gcp:Network", name, None, opts)
        vpc = gcp.compute.Network(
            f"{name}-vpc",
            name=f"{name}-vpc",
            project=args.project,
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            description="DEX platform network (custom mode)",
            opts=pulumi.ResourceOptions(parent=self),
        )
        subnet = self._node_subnet(name, args, vpc)
        self._nat(name, args, vpc, subnet)
        connection = self._private_service_access(name, args, vpc)
        self._firewall(name, args, vpc)

        self.network_id = vpc.id
        self.network_self_link = vpc.self_link
        self.subnet_self_link = subnet.self_link
        self.private_services_connection = connection
        self.contract = NetworkOutputs(
            network_id=vpc.self_link,
            node_subnet_ids=pulumi.Output.all(subnet.self_link).apply(list),
        )
        self.register_outputs(
            {**contract_outputs(self.contract), "subnet_self_link": subnet.self_link}
        )

    def _node_subnet(
        self, name: str, args: NetworkArgs, vpc: gcp.compute.Network
    ) -> gcp.compute.Subnetwork:
        """The nodes' subnet, pods and services on secondary ranges, Private Google Access
        and flow logs on."""
        return gcp.compute.Subnetwork(
            f"{name}-nodes",
            name=f"{name}-nodes",
            project=args.project,
            region=args.region,
            network=vpc.id,
            ip_cidr_range=args.nodes_cidr,
            private_ip_google_access=True,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=PODS_RANGE, ip_cidr_range=args.pods_cidr
                ),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=SERVICES_RANGE, ip_cidr_range=args.services_cidr
                ),
            ],
            log_config=gcp.compute.SubnetworkLogConfigArgs(
                aggregation_interval="INTERVAL_5_SEC",
                flow_sampling=0.5,
                metadata="INCLUDE_ALL_METADATA",
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _nat(
        self,
        name: str,
        args: NetworkArgs,
        vpc: gcp.compute.Network,
        subnet: gcp.compute.Subnetwork,
    ) -> None:
        """Cloud NAT for the node subnet behind a Cloud Router, logging errors."""
        child = pulumi.ResourceOptions(parent=self)
        router = gcp.compute.Router(
            f"{name}-router",
            name=f"{name}-router",
            project=args.project,
            region=args.region,
            network=vpc.id,
            opts=child,
        )
        gcp.compute.RouterNat(
            f"{name}-nat",
            name=f"{name}-nat",
            project=args.project,
            region=args.region,
            router=router.name,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
            subnetworks=[
                gcp.compute.RouterNatSubnetworkArgs(
                    name=subnet.id, source_ip_ranges_to_nats=["ALL_IP_RANGES"]
                )
            ],
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            opts=child,
        )

    def _private_service_access(
        self, name: str, args: NetworkArgs, vpc: gcp.compute.Network
    ) -> gcp.servicenetworking.Connection:
        """The reserved range and its peering with Google's services (Cloud SQL,
        Memorystore)."""
        child = pulumi.ResourceOptions(parent=self)
        psa = ipaddress.IPv4Network(args.private_services_cidr)
        psa_range = gcp.compute.GlobalAddress(
            f"{name}-private-services",
            name=f"{name}-private-services",
            project=args.project,
            purpose="VPC_PEERING",
            address_type="INTERNAL",
            address=str(psa.network_address),
            prefix_length=psa.prefixlen,
            network=vpc.id,
            opts=child,
        )
        return gcp.servicenetworking.Connection(
            f"{name}-private-services-peering",
            network=vpc.id,
            service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[psa_range.name],
            opts=child,
        )

    def _firewall(self, name: str, args: NetworkArgs, vpc: gcp.compute.Network) -> None:
        """Internal traffic and the control plane allowed; all other ingress denied, logged."""
        child = pulumi.ResourceOptions(parent=self)
        internal = [args.nodes_cidr, args.pods_cidr, args.services_cidr]
        gcp.compute.Firewall(
            f"{name}-allow-internal",
            name=f"{name}-allow-internal",
            project=args.project,
            network=vpc.id,
            direction="INGRESS",
            priority=1000,
            source_ranges=internal,
            allows=[
                gcp.compute.FirewallAllowArgs(protocol="tcp"),
                gcp.compute.FirewallAllowArgs(protocol="udp"),
                gcp.compute.FirewallAllowArgs(protocol="icmp"),
            ],
            description="Nodes, pods and services talk to each other",
            log_config=gcp.compute.FirewallLogConfigArgs(metadata="EXCLUDE_ALL_METADATA"),
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-allow-control-plane",
            name=f"{name}-allow-control-plane",
            project=args.project,
            network=vpc.id,
            direction="INGRESS",
            priority=1000,
            source_ranges=[args.control_plane_cidr],
            allows=[
                gcp.compute.FirewallAllowArgs(
                    protocol="tcp", ports=["443", "8080", "8443", "9443", "10250"]
                )
            ],
            # 8080: the sealed-secrets controller, which kubeseal reaches through the API
            # server's service proxy (the webhooks' ports: components/k8s/namespaces.WEBHOOKS)
            description="GKE control plane to nodes (kubelet, admission webhooks, kubeseal)",
            log_config=gcp.compute.FirewallLogConfigArgs(metadata="EXCLUDE_ALL_METADATA"),
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-deny-all-ingress",
            name=f"{name}-deny-all-ingress",
            project=args.project,
            network=vpc.id,
            direction="INGRESS",
            priority=65534,
            source_ranges=["0.0.0.0/0"],
            denies=[gcp.compute.FirewallDenyArgs(protocol="all")],
            description="Everything not allowed above is refused, and logged",
            log_config=gcp.compute.FirewallLogConfigArgs(metadata="INCLUDE_ALL_METADATA"),
            opts=child,
        )
