//! A small EC2 world in moto for the integration tests: a VPC with application groups and
//! instances launched with explicit network interfaces (moto then reports each interface's
//! groups faithfully; with `SecurityGroupIds` at launch, moto 5 keeps reporting the launch
//! groups on the primary interface even after a change, which real AWS does not).

#![allow(dead_code)]

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, InstanceAttributeName,
    InstanceNetworkInterfaceSpecification, IpPermission, IpRange,
};
use hanko::aws::TAG_REQUEST;

use super::moto;

pub const QUARANTINE: &str = "hanko-quarantine";
pub const TRANSITION: &str = "hanko-isolation-transition";

/// A VPC with two application groups, as a team would have it.
pub struct World {
    pub ec2: aws_sdk_ec2::Client,
    pub vpc: String,
    pub subnet: String,
    /// `app`: SSH from 10.0.0.0/8. Shared by the target and its neighbour.
    pub app: String,
    /// `db`: no rules of its own.
    pub db: String,
    pub image: String,
}

/// One launched instance and its interfaces in device order.
pub struct Launched {
    pub id: String,
    pub enis: Vec<String>,
}

impl World {
    pub async fn new(moto: &moto::Moto) -> World {
        World::with_client(moto.ec2().await).await
    }

    pub async fn with_client(ec2: aws_sdk_ec2::Client) -> World {
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.0.0.0/16")
            .send()
            .await
            .unwrap()
            .vpc
            .unwrap()
            .vpc_id
            .unwrap();
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block("10.0.1.0/24")
            .send()
            .await
            .unwrap()
            .subnet
            .unwrap()
            .subnet_id
            .unwrap();
        let group = |name: &'static str| {
            let ec2 = ec2.clone();
            let vpc = vpc.clone();
            async move {
                ec2.create_security_group()
                    .group_name(name)
                    .description(name)
                    .vpc_id(vpc)
                    .send()
                    .await
                    .unwrap()
                    .group_id
                    .unwrap()
            }
        };
        let app = group("app").await;
        let db = group("db").await;
        ec2.authorize_security_group_ingress()
            .group_id(&app)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(22)
                    .to_port(22)
                    .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/8").build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let image = ec2.describe_images().send().await.unwrap().images()[0]
            .image_id()
            .unwrap()
            .to_string();
        World {
            ec2,
            vpc,
            subnet,
            app,
            db,
            image,
        }
    }

    /// Launches an instance with one interface per entry of `groups` (device index = position)
    /// and two EBS volumes deleted on termination; its shutdown behaviour is `terminate`.
    pub async fn launch(&self, groups: &[&[&str]]) -> Launched {
        let mut enis = Vec::new();
        for g in groups {
            let eni = self
                .ec2
                .create_network_interface()
                .subnet_id(&self.subnet)
                .set_groups(Some(g.iter().map(|s| s.to_string()).collect()))
                .send()
                .await
                .unwrap()
                .network_interface
                .unwrap()
                .network_interface_id
                .unwrap();
            enis.push(eni);
        }
        let mut run = self
            .ec2
            .run_instances()
            .image_id(&self.image)
            .min_count(1)
            .max_count(1);
        for (index, eni) in enis.iter().enumerate() {
            run = run.network_interfaces(
                InstanceNetworkInterfaceSpecification::builder()
                    .network_interface_id(eni)
                    .device_index(index as i32)
                    .build(),
            );
        }
        for (device, size) in [("/dev/sda1", 8), ("/dev/sdf", 10)] {
            run = run.block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name(device)
                    .ebs(
                        EbsBlockDevice::builder()
                            .volume_size(size)
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build(),
            );
        }
        let out = run.send().await.unwrap();
        let id = out.instances()[0].instance_id().unwrap().to_string();
        self.ec2
            .modify_instance_attribute()
            .instance_id(&id)
            .attribute(InstanceAttributeName::InstanceInitiatedShutdownBehavior)
            .value("terminate")
            .send()
            .await
            .unwrap();
        Launched { id, enis }
    }

    /// The groups of an interface as EC2 reports them, sorted.
    pub async fn eni_groups(&self, eni: &str) -> Vec<String> {
        let out = self
            .ec2
            .describe_network_interfaces()
            .network_interface_ids(eni)
            .send()
            .await
            .unwrap();
        let mut g: Vec<String> = out.network_interfaces()[0]
            .groups()
            .iter()
            .map(|g| g.group_id().unwrap().to_string())
            .collect();
        g.sort();
        g
    }

    pub async fn group_by_name(&self, name: &str) -> Option<aws_sdk_ec2::types::SecurityGroup> {
        let out = self
            .ec2
            .describe_security_groups()
            .filters(Filter::builder().name("group-name").values(name).build())
            .filters(Filter::builder().name("vpc-id").values(&self.vpc).build())
            .send()
            .await
            .unwrap();
        out.security_groups().first().cloned()
    }

    pub async fn volumes(&self, instance: &str) -> Vec<(String, String, bool)> {
        let out = self
            .ec2
            .describe_instances()
            .instance_ids(instance)
            .send()
            .await
            .unwrap();
        let mut v: Vec<(String, String, bool)> = out.reservations()[0].instances()[0]
            .block_device_mappings()
            .iter()
            .map(|m| {
                let ebs = m.ebs().unwrap();
                (
                    m.device_name().unwrap().to_string(),
                    ebs.volume_id().unwrap().to_string(),
                    ebs.delete_on_termination().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// Every snapshot of the instance's volumes: (snapshot id, volume id, request tag).
    /// (moto's own AMIs come with snapshots owned by the same account: filter by volume.)
    pub async fn snapshots(&self, instance: &str) -> Vec<(String, String, Option<String>)> {
        let volumes: Vec<String> = self
            .volumes(instance)
            .await
            .into_iter()
            .map(|v| v.1)
            .collect();
        let out = self
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(
                Filter::builder()
                    .name("volume-id")
                    .set_values(Some(volumes))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.snapshots()
            .iter()
            .map(|s| {
                let request = s
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(TAG_REQUEST))
                    .and_then(|t| t.value().map(str::to_owned));
                (
                    s.snapshot_id().unwrap().to_string(),
                    s.volume_id().unwrap().to_string(),
                    request,
                )
            })
            .collect()
    }

    pub async fn termination_protection(&self, instance: &str) -> bool {
        self.ec2
            .describe_instance_attribute()
            .instance_id(instance)
            .attribute(InstanceAttributeName::DisableApiTermination)
            .send()
            .await
            .unwrap()
            .disable_api_termination()
            .unwrap()
            .value()
            .unwrap()
    }

    pub async fn shutdown_behavior(&self, instance: &str) -> String {
        self.ec2
            .describe_instance_attribute()
            .instance_id(instance)
            .attribute(InstanceAttributeName::InstanceInitiatedShutdownBehavior)
            .send()
            .await
            .unwrap()
            .instance_initiated_shutdown_behavior()
            .unwrap()
            .value()
            .unwrap()
            .to_string()
    }

    pub async fn tag(&self, instance: &str, key: &str) -> Option<String> {
        let out = self
            .ec2
            .describe_tags()
            .filters(
                Filter::builder()
                    .name("resource-id")
                    .values(instance)
                    .build(),
            )
            .filters(Filter::builder().name("key").values(key).build())
            .send()
            .await
            .unwrap();
        out.tags().first().map(|t| t.value().unwrap().to_string())
    }
}
