"""The eks target: our own small ComponentResources over plain pulumi_aws resources."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING
from urllib.parse import quote

import pulumi
import pulumi_aws as aws

from modelsvc.catalog.capacity import gpu_type, node_group_sizes

from .labels import POOL
from .manifests import cluster_autoscaler
from .manifests.common import BUILD_SERVICE_ACCOUNT, GPU_TAINT_KEY, GPU_TAINT_VALUE, TRITON_SERVICE_ACCOUNT

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pulumi_aws.eks.outputs import ClusterIdentity, NodeGroupResource

    from modelsvc.catalog import Catalog

GPU_AMI = "AL2023_x86_64_NVIDIA"
SYSTEM_AMI = "AL2023_x86_64_STANDARD"
EKS_OIDC_THUMBPRINT = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"


class Network(pulumi.ComponentResource):
    """VPC over two AZs: public subnets (load balancers, NAT) and private subnets (nodes), one NAT gateway."""

    def __init__(self, name: str, cidr: str, azs: list[str], cluster_name: str, opts=None):
        super().__init__("modelsvc:aws:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"Name": name}
        self.vpc = aws.ec2.Vpc(
            name, cidr_block=cidr, enable_dns_hostnames=True, enable_dns_support=True, tags=tags, opts=child
        )
        igw = aws.ec2.InternetGateway(name, vpc_id=self.vpc.id, tags=tags, opts=child)
        base = cidr.split("/")[0].rsplit(".", 2)[0]  # e.g. 10.0
        self.public_subnets, self.private_subnets = [], []
        cluster_tag = f"kubernetes.io/cluster/{cluster_name}"
        for i, az in enumerate(azs):
            self.public_subnets.append(
                aws.ec2.Subnet(
                    f"{name}-public-{i}",
                    vpc_id=self.vpc.id,
                    availability_zone=az,
                    cidr_block=f"{base}.{i * 16}.0/20",
                    map_public_ip_on_launch=True,
                    tags={"Name": f"{name}-public-{az}", "kubernetes.io/role/elb": "1", cluster_tag: "shared"},
                    opts=child,
                )
            )
            self.private_subnets.append(
                aws.ec2.Subnet(
                    f"{name}-private-{i}",
                    vpc_id=self.vpc.id,
                    availability_zone=az,
                    cidr_block=f"{base}.{128 + i * 32}.0/19",
                    tags={
                        "Name": f"{name}-private-{az}",
                        "kubernetes.io/role/internal-elb": "1",
                        cluster_tag: "shared",
                    },
                    opts=child,
                )
            )
        eip = aws.ec2.Eip(f"{name}-nat", domain="vpc", tags=tags, opts=child)
        nat = aws.ec2.NatGateway(
            name,
            allocation_id=eip.id,
            subnet_id=self.public_subnets[0].id,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
        )
        public_rt = aws.ec2.RouteTable(
            f"{name}-public", vpc_id=self.vpc.id, routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}], opts=child
        )
        private_rt = aws.ec2.RouteTable(
            f"{name}-private",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
            opts=child,
        )
        for i, (pub, priv) in enumerate(zip(self.public_subnets, self.private_subnets)):
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}", subnet_id=pub.id, route_table_id=public_rt.id, opts=child
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}", subnet_id=priv.id, route_table_id=private_rt.id, opts=child
            )
        self.register_outputs({"vpc_id": self.vpc.id})


def _assume_role(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


class Cluster(pulumi.ComponentResource):
    """EKS control plane, its IAM role, the node role and the OIDC provider for IRSA; kubeconfig as a secret."""

    def __init__(self, name: str, network: Network, version: str, region: str, opts=None):
        super().__init__("modelsvc:aws:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(f"{name}-cluster", assume_role_policy=_assume_role("eks.amazonaws.com"), opts=child)
        attach = aws.iam.RolePolicyAttachment(
            f"{name}-cluster", role=role.name, policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy", opts=child
        )
        self.cluster = aws.eks.Cluster(
            name,
            name=name,
            version=version,
            role_arn=role.arn,
            vpc_config={
                "subnet_ids": [s.id for s in network.private_subnets + network.public_subnets],
                "endpoint_public_access": True,
                "endpoint_private_access": True,
            },
            access_config={
                "authentication_mode": "API_AND_CONFIG_MAP",
                "bootstrap_cluster_creator_admin_permissions": True,
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[attach]),
        )
        self.node_role = aws.iam.Role(f"{name}-node", assume_role_policy=_assume_role("ec2.amazonaws.com"), opts=child)
        self.node_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{p}", role=self.node_role.name, policy_arn=f"arn:aws:iam::aws:policy/{p}", opts=child
            )
            for p in ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly")
        ]
        # The VPC CNI enforces NetworkPolicy only with its network policy agent switched on.
        self.vpc_cni = aws.eks.Addon(
            f"{name}-vpc-cni",
            cluster_name=self.cluster.name,
            addon_name="vpc-cni",
            configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            opts=child,
        )
        self.issuer = self.cluster.identities.apply(_oidc_issuer)
        self.oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=self.issuer,
            client_id_lists=["sts.amazonaws.com"],
            thumbprint_lists=[EKS_OIDC_THUMBPRINT],
            opts=child,
        )
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(
                self.cluster.name,
                self.cluster.endpoint,
                self.cluster.certificate_authority.apply(lambda ca: ca.data),
            ).apply(lambda a: kubeconfig(a[0], a[1], a[2], region))
        )
        self.register_outputs({"name": self.cluster.name})


def _oidc_issuer(identities: Sequence[ClusterIdentity]) -> str | None:
    """The cluster's OIDC issuer (EKS gives every cluster one: the IRSA roles trust it)."""
    oidcs = identities[0].oidcs
    if not oidcs:
        raise RuntimeError("the EKS cluster reports no OIDC identity provider, which the IRSA roles need")
    return oidcs[0].issuer


def kubeconfig(name: str, endpoint: str, ca_data: str, region: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": name,
            "clusters": [{"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "users": [
                {
                    "name": name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": ["eks", "get-token", "--cluster-name", name, "--region", region],
                        }
                    },
                }
            ],
        }
    )


def irsa_trust(cluster: Cluster, subjects) -> pulumi.Output:
    """IAM trust policy: the cluster's OIDC provider may assume the role for these service account(s) (IRSA)."""
    return pulumi.Output.all(cluster.oidc.arn, cluster.issuer).apply(
        lambda a: json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": a[0]},
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {
                            "StringEquals": {
                                f"{a[1].removeprefix('https://')}:sub": subjects,
                                f"{a[1].removeprefix('https://')}:aud": "sts.amazonaws.com",
                            }
                        },
                    }
                ],
            }
        )
    )


class NodeGroups(pulumi.ComponentResource):
    """A small system node group plus one GPU managed node group per pool, sized from the catalog's demand."""

    def __init__(
        self, name: str, catalog: Catalog, cluster: Cluster, network: Network, system_instance_type: str, opts=None
    ):
        super().__init__("modelsvc:aws:NodeGroups", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=cluster.node_policies)
        subnets = [s.id for s in network.private_subnets]
        self.system = aws.eks.NodeGroup(
            f"{name}-system",
            cluster_name=cluster.cluster.name,
            node_group_name="system",
            node_role_arn=cluster.node_role.arn,
            subnet_ids=subnets,
            ami_type=SYSTEM_AMI,
            instance_types=[system_instance_type],
            scaling_config={"min_size": 2, "desired_size": 2, "max_size": 4},
            labels={"modelsvc.io/role": "system"},
            opts=child,
        )
        self.sizes = node_group_sizes(catalog)
        self.pools: dict[str, aws.eks.NodeGroup] = {}
        # The cluster autoscaler sizes the GPU groups: it adds nodes for pending pods (more instances, an HPA
        # scale-up, a build) and removes idle ones. Pulumi sets the first desired size (the catalog's demand with
        # build room, so the first deploy does not wait for the autoscaler) and the ceiling, and then leaves desired
        # alone; the floor is 0. A floor from the demand could not be raised: EKS refuses a minimum above the current
        # desired size ("Minimum capacity N can't be greater than desired size M"), and desired is the autoscaler's.
        autoscaled = pulumi.ResourceOptions.merge(
            child, pulumi.ResourceOptions(ignore_changes=["scalingConfig.desiredSize"])
        )
        for pool_name, pool in catalog.pools.items():
            size = self.sizes[pool_name]
            group = aws.eks.NodeGroup(
                f"{name}-{pool_name}",
                cluster_name=cluster.cluster.name,
                node_group_name=f"gpu-{pool_name}",
                node_role_arn=cluster.node_role.arn,
                subnet_ids=subnets,
                ami_type=GPU_AMI,
                instance_types=[pool.instance_type],
                disk_size=GPU_NODE_DISK_GIB,
                scaling_config={"min_size": 0, "desired_size": size.desired, "max_size": size.max},
                labels=gpu_node_labels(catalog, pool_name),
                taints=[{"key": GPU_TAINT_KEY, "value": GPU_TAINT_VALUE, "effect": "NO_SCHEDULE"}],
                tags=discovery_tags(name),
                update_config={"max_unavailable": 1},
                opts=autoscaled,
            )
            self.pools[pool_name] = group
            _tag_asg(f"{name}-{pool_name}", group, node_template_tags(catalog, pool_name), child)
        self.register_outputs({})


GPU_NODE_DISK_GIB = 500
# What a GPU node offers for ephemeral storage, as the cluster autoscaler assumes for a group at 0 nodes: the disk less
# what the kubelet and images keep (system reserve, eviction threshold, ~20 GB Triton images): a scale-up it promises
# must fit (a pod asking for more than the node really offers would make it add nodes that never fit).
GPU_NODE_EPHEMERAL_STORAGE = "440Gi"
ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"  # cluster-autoscaler/cloudprovider/aws/README.md, GPU instances


def gpu_node_labels(catalog: Catalog, pool_name: str) -> dict[str, str]:
    """Node labels of a pool's group. The accelerator label is there when the node joins, before the device plugin
    advertises its GPUs, so the autoscaler does not add a second node for the same pod meanwhile."""
    return {POOL: pool_name, "nvidia.com/gpu.present": "true", ACCELERATOR_LABEL: gpu_type(catalog, pool_name)}


def discovery_tags(cluster_name: str) -> dict[str, str]:
    """The cluster autoscaler's auto-discovery tags (`autoDiscovery.clusterName`). EKS puts these two on a managed
    node group's Auto Scaling group itself; any other node group tag stays on the node group (aws/containers-roadmap
    #608), hence node_template_tags go on the ASG with their own resources."""
    return {"k8s.io/cluster-autoscaler/enabled": "true", f"k8s.io/cluster-autoscaler/{cluster_name}": "owned"}


def node_template_tags(catalog: Catalog, pool_name: str) -> dict[str, str]:
    """What a node of the group will look like, for the autoscaler to scale it up from 0 nodes: its labels, taint and
    resources, in the ASG tag format of kubernetes/autoscaler cluster-autoscaler/cloudprovider/aws/README.md ("Auto
    discovery setup": node-template/label/, /taint/, /resources/), tag cluster-autoscaler-1.33.6."""
    prefix = "k8s.io/cluster-autoscaler/node-template"
    tags = {f"{prefix}/label/{k}": v for k, v in gpu_node_labels(catalog, pool_name).items()}
    tags[f"{prefix}/taint/{GPU_TAINT_KEY}"] = f"{GPU_TAINT_VALUE}:NoSchedule"
    tags[f"{prefix}/resources/nvidia.com/gpu"] = str(catalog.pools[pool_name].gpus_per_node)
    tags[f"{prefix}/resources/ephemeral-storage"] = GPU_NODE_EPHEMERAL_STORAGE
    return tags


def _asg_name(resources: Sequence[NodeGroupResource]) -> str | None:
    """The node group's Auto Scaling group (EKS makes one per managed node group)."""
    groups = resources[0].autoscaling_groups
    if not groups:
        raise RuntimeError("the EKS node group reports no Auto Scaling group")
    return groups[0].name


def _tag_asg(name: str, group: aws.eks.NodeGroup, tags: dict[str, str], opts: pulumi.ResourceOptions) -> None:
    """One aws.autoscaling.Tag per tag on the node group's (single) Auto Scaling group: pulumi_aws's resource for ASGs
    that EKS creates (its docs name this case)."""
    asg = group.resources.apply(_asg_name)
    for key, value in tags.items():
        aws.autoscaling.Tag(
            f"{name}-asg-{re.sub(r'[^A-Za-z0-9]+', '-', key.split('node-template/', 1)[-1]).strip('-')}",
            autoscaling_group_name=asg,
            tag={"key": key, "value": value, "propagate_at_launch": False},
            opts=opts,
        )


def cluster_autoscaler_policy(cluster_name: str) -> dict:
    """What the autoscaler needs (its AWS docs): read ASGs, instance types and node groups; change only this cluster's
    groups (matched by the ownership tag)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Resource": "*",
                "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities",
                    "autoscaling:DescribeTags",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions",
                    "ec2:GetInstanceTypesFromInstanceRequirements",
                    "eks:DescribeNodegroup",
                ],
            },
            {
                "Effect": "Allow",
                "Resource": "*",
                "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                "Condition": {"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}},
            },
        ],
    }


class ClusterAutoscaler(pulumi.ComponentResource):
    """The cluster autoscaler's IAM role (IRSA, for its service account in kube-system); its Helm release is in the
    deployment plan (infra/manifests/cluster_autoscaler.py)."""

    def __init__(self, name: str, cluster: Cluster, opts=None):
        super().__init__("modelsvc:aws:ClusterAutoscaler", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        subject = f"system:serviceaccount:{cluster_autoscaler.NAMESPACE}:{cluster_autoscaler.SERVICE_ACCOUNT}"
        self.role = aws.iam.Role(
            f"{name}-cluster-autoscaler", assume_role_policy=irsa_trust(cluster, subject), opts=child
        )
        aws.iam.RolePolicy(
            f"{name}-cluster-autoscaler",
            role=self.role.id,
            policy=json.dumps(cluster_autoscaler_policy(name)),
            opts=child,
        )
        self.register_outputs({"role_arn": self.role.arn})


def _s3_buckets(catalog: Catalog) -> list[str]:
    return sorted(
        {m.source[5:].split("/", 1)[0] for m in catalog.models.values() if m.source and m.source.startswith("s3://")}
    )


class ModelStore(pulumi.ComponentResource):
    """S3 bucket for engines, and two IRSA roles: the build Jobs' (read checkpoints, write engines) and Triton
    pods' (read engines only)."""

    def __init__(
        self,
        name: str,
        bucket_name: str,
        catalog: Catalog,
        cluster: Cluster,
        build_namespace: str,
        triton_namespaces: list[str],
        opts=None,
    ):
        super().__init__("modelsvc:aws:ModelStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # A fixed name (from the stack settings) so manifests can carry the cache URI as a plain string.
        self.bucket = aws.s3.Bucket(name, bucket=bucket_name, force_destroy=False, opts=child)
        aws.s3.BucketPublicAccessBlock(
            name,
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        sources = _s3_buckets(catalog)

        def build_policy(arn: str) -> str:
            return json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [arn]},
                        {
                            "Effect": "Allow",
                            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                            "Resource": [f"{arn}/*"],
                        },
                    ]
                    + (
                        [
                            {
                                "Effect": "Allow",
                                "Action": ["s3:ListBucket"],
                                "Resource": [f"arn:aws:s3:::{b}" for b in sources],
                            },
                            {
                                "Effect": "Allow",
                                "Action": ["s3:GetObject"],
                                "Resource": [f"arn:aws:s3:::{b}/*" for b in sources],
                            },
                        ]
                        if sources
                        else []
                    ),
                }
            )

        def read_policy(arn: str) -> str:
            return json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [arn]},
                        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"{arn}/*"]},
                    ],
                }
            )

        self.build_role = self._irsa_role(
            f"{name}-build", cluster, [(build_namespace, BUILD_SERVICE_ACCOUNT)], self.bucket.arn.apply(build_policy)
        )
        self.triton_role = self._irsa_role(
            f"{name}-triton",
            cluster,
            [(ns, TRITON_SERVICE_ACCOUNT) for ns in triton_namespaces],
            self.bucket.arn.apply(read_policy),
        )
        self.uri = self.bucket.bucket.apply(lambda b: f"s3://{b}")
        self.register_outputs(
            {
                "bucket": self.bucket.bucket,
                "build_role_arn": self.build_role.arn,
                "triton_role_arn": self.triton_role.arn,
            }
        )

    def _irsa_role(self, name: str, cluster: Cluster, accounts: list[tuple[str, str]], policy) -> aws.iam.Role:
        """A role only the given service accounts (namespace, name) can assume through the cluster's OIDC issuer."""
        child = pulumi.ResourceOptions(parent=self)
        subjects = [f"system:serviceaccount:{ns}:{sa}" for ns, sa in accounts]
        role = aws.iam.Role(f"{name}-irsa", assume_role_policy=irsa_trust(cluster, subjects), opts=child)
        aws.iam.RolePolicy(f"{name}-irsa", role=role.id, policy=policy, opts=child)
        return role


class UsageDatabase(pulumi.ComponentResource):
    """RDS for PostgreSQL in the private subnets, reachable only from inside the VPC: the usage store.

    Billing data: encrypted, Multi-AZ by default (a failover is a short outage the gateways' spools ride out),
    two weeks of point-in-time recovery, deletion protection and a final snapshot."""

    PORT = 5432

    def __init__(
        self,
        name: str,
        network: Network,
        password: pulumi.Input[str],
        *,
        instance_class: str,
        multi_az: bool,
        opts=None,
    ):
        super().__init__("modelsvc:aws:UsageDatabase", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        subnets = aws.rds.SubnetGroup(name, subnet_ids=[s.id for s in network.private_subnets], opts=child)
        sg = aws.ec2.SecurityGroup(
            name,
            vpc_id=network.vpc.id,
            description="PostgreSQL from inside the VPC (the gateway pods)",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": self.PORT,
                    "to_port": self.PORT,
                    "cidr_blocks": [network.vpc.cidr_block],
                }
            ],
            egress=[],
            opts=child,
        )
        self.instance = aws.rds.Instance(
            name,
            engine="postgres",
            engine_version="16",
            instance_class=instance_class,
            allocated_storage=50,
            max_allocated_storage=500,
            storage_type="gp3",
            storage_encrypted=True,
            multi_az=multi_az,
            db_name="modelsvc",
            username="modelsvc",
            password=password,
            port=self.PORT,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[sg.id],
            publicly_accessible=False,
            backup_retention_period=14,
            deletion_protection=True,
            skip_final_snapshot=False,
            final_snapshot_identifier=f"{name}-final",
            auto_minor_version_upgrade=True,
            opts=child,
        )
        self.url: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(self.instance.address, password).apply(
                lambda a: f"postgresql://modelsvc:{quote(a[1], safe='')}@{a[0]}:{self.PORT}/modelsvc?sslmode=require"
            )
        )
        self.register_outputs({"endpoint": self.instance.endpoint})
