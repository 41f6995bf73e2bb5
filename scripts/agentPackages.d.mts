// Types of scripts/agentPackages.mjs, for the package tests.
export interface PackageArch {
  platform: 'linux-x64' | 'linux-arm64';
  deb: 'amd64' | 'arm64';
  rpm: 'x86_64' | 'aarch64';
}
export interface PackageBuild {
  work: string;
  out: string;
  version: string;
  arch: PackageArch;
  compression?: 'xz' | 'none';
}
export const EXECUTABLES: string;
export const LINUX: string;
export const WINDOWS_INSTALLER: string;
export const ARCHES: readonly PackageArch[];
export function packageVersion(version: string): string;
export function executable(platform: string): string;
export function debPackage(build: PackageBuild): string;
export function rpmPackage(build: PackageBuild): string;
export function windowsZip(build: { work: string; out: string; version: string }): string;
export function outputNames(version: string): string[];
