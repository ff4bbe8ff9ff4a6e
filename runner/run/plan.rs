//! The names of a run's engine objects and the mount plan both phases use.
//!
//! What crosses the boundary crosses in volumes: one for the workspace, one for its `.git`
//! (read-only to the agent phase), one per `persist` path. The plan is computed once, before
//! any object exists, and each phase takes its mounts from it, so the setup phase, the
//! boundary read and the agent phase can't disagree about what crosses.

use crate::boundary::{self, Root, RootKind};
use crate::engine::VolumeMount;

/// Where the workspace lives in both phases.
pub use crate::environment::WORKSPACE;

/// Names of one run's engine objects, derived from the run id in one place.
#[derive(Debug, Clone)]
pub struct RunNames {
    pub run_id: String,
}

impl RunNames {
    pub fn container(&self, phase: &str) -> String {
        format!("airlock-{}-{phase}", self.run_id)
    }

    pub fn network(&self) -> String {
        format!("airlock-{}-setup", self.run_id)
    }

    /// The volume that carries `root` across the boundary.
    pub fn volume(&self, root: &Root) -> String {
        format!("airlock-{}-{}", self.run_id, root.alias)
    }
}

/// The crossing roots and their volumes.
#[derive(Debug, Clone)]
pub struct MountPlan {
    pub roots: Vec<Root>,
    volumes: Vec<String>,
}

impl MountPlan {
    pub fn new(names: &RunNames, has_git: bool, persist: &[String]) -> MountPlan {
        let roots = boundary::roots(WORKSPACE, has_git, persist);
        let volumes = roots.iter().map(|r| names.volume(r)).collect();
        MountPlan { roots, volumes }
    }

    /// The volumes to create before the setup phase.
    pub fn volumes(&self) -> &[String] {
        &self.volumes
    }

    /// The setup phase's mounts: each volume at its path, and again under
    /// [`boundary::CROSSING_DIR`], where the boundary reads them all at once.
    pub fn setup_mounts(&self) -> Vec<VolumeMount> {
        let mut v = Vec::new();
        for (root, volume) in self.roots.iter().zip(&self.volumes) {
            // The engine fills an empty volume from the image at every mount while it stays
            // empty, resetting its root's owner too. The workspace and .git never want that;
            // a persist volume does in setup (the image's files at that path are kept).
            v.push(VolumeMount {
                volume: volume.clone(),
                target: root.path.clone(),
                read_only: false,
                fill_from_image: root.kind == RootKind::Persist,
            });
            v.push(VolumeMount {
                volume: volume.clone(),
                target: root.crossing_path(),
                read_only: false,
                fill_from_image: false,
            });
        }
        v
    }

    /// The sweep's mounts ([`boundary::sweep`]): each volume once, under
    /// [`boundary::CROSSING_DIR`] as in setup, and the folders to sweep.
    pub fn sweep_mounts(&self) -> (Vec<VolumeMount>, Vec<String>) {
        let mounts = self
            .roots
            .iter()
            .zip(&self.volumes)
            .map(|(root, volume)| VolumeMount {
                volume: volume.clone(),
                target: root.crossing_path(),
                read_only: false,
                fill_from_image: false,
            })
            .collect();
        (mounts, self.roots.iter().map(Root::crossing_path).collect())
    }

    /// The agent phase's mounts: exactly what setup left (never refilled from the image), the
    /// workspace's `.git` read-only (a read-only mount: `chmod` can't undo it).
    pub fn agent_mounts(&self) -> Vec<VolumeMount> {
        self.roots
            .iter()
            .zip(&self.volumes)
            .map(|(root, volume)| VolumeMount {
                volume: volume.clone(),
                target: root.path.clone(),
                read_only: root.kind == RootKind::Git,
                fill_from_image: false,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_phases_mount_the_same_volumes_at_the_same_paths() {
        let names = RunNames {
            run_id: "r1".into(),
        };
        let plan = MountPlan::new(&names, true, &["/root/.cache".into()]);
        assert_eq!(
            plan.volumes(),
            [
                "airlock-r1-workspace",
                "airlock-r1-git",
                "airlock-r1-persist0"
            ]
        );
        let setup = plan.setup_mounts();
        let agent = plan.agent_mounts();
        assert_eq!(setup.len(), 6);
        for a in &agent {
            assert!(setup
                .iter()
                .any(|s| s.volume == a.volume && s.target == a.target));
        }
        let git = agent
            .iter()
            .find(|m| m.target == "/workspace/.git")
            .unwrap();
        assert!(git.read_only);
        assert!(agent.iter().all(|m| !m.fill_from_image));
        assert!(setup
            .iter()
            .any(|m| m.target == "/root/.cache" && m.fill_from_image));
    }
}
