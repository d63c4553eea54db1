//! Compiling WGSL into compute pipelines, written once for every host in the engine and the
//! station: a bind group layout of buffer bindings, and one pipeline per entry point of a module.

/// A compute-stage bind group layout of buffer bindings: `(binding, kind)` each.
pub fn buffer_layout(
    device: &wgpu::Device,
    label: &str,
    bindings: &[(u32, wgpu::BufferBindingType)],
) -> wgpu::BindGroupLayout {
    let entries: Vec<_> = bindings
        .iter()
        .map(|&(binding, ty)| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        })
        .collect();
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries: &entries,
    })
}

/// Compiles `src` and builds one pipeline per entry point of `entries`, in order, all with the one
/// bind group `layout`. `label` names the module and the pipeline layout; each pipeline is named by
/// its entry point.
pub fn compute_pipelines<const N: usize>(
    device: &wgpu::Device,
    label: &str,
    src: &str,
    layout: &wgpu::BindGroupLayout,
    entries: [&str; N],
) -> [wgpu::ComputePipeline; N] {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(src.into()),
    });
    let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(label),
        bind_group_layouts: &[Some(layout)],
        immediate_size: 0,
    });
    entries.map(|entry| {
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(&pl),
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        })
    })
}

/// Waits for an error scope and returns what it caught, if anything.
pub fn scope_error(scope: wgpu::ErrorScopeGuard) -> Option<wgpu::Error> {
    pollster::block_on(scope.pop())
}
