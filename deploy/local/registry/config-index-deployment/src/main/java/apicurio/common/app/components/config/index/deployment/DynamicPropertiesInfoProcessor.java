package apicurio.common.app.components.config.index.deployment;

import java.util.ArrayList;
import java.util.List;

import org.jboss.jandex.AnnotationInstance;
import org.jboss.jandex.AnnotationTarget;
import org.jboss.jandex.AnnotationValue;
import org.jboss.jandex.DotName;
import org.jboss.jandex.FieldInfo;
import org.jboss.jandex.Type;

import apicurio.common.app.components.config.index.DynamicPropertiesInfoRecorder;
import io.apicurio.common.apps.config.DynamicConfigPropertyDef;
import io.apicurio.common.apps.config.DynamicConfigPropertyList;
import io.quarkus.arc.deployment.BeanArchiveIndexBuildItem;
import io.quarkus.arc.deployment.SyntheticBeanBuildItem;
import io.quarkus.deployment.annotations.BuildProducer;
import io.quarkus.deployment.annotations.BuildStep;
import io.quarkus.deployment.annotations.ExecutionTime;
import io.quarkus.deployment.annotations.Record;

/**
 * Stand-in for the unpublished apicurio-common-app-components-config-index-deployment:
 * collects every field annotated @Dynamic + @ConfigProperty and publishes them as a
 * DynamicConfigPropertyList bean (built by the runtime jar's DynamicPropertiesInfoRecorder).
 */
public class DynamicPropertiesInfoProcessor {

    private static final DotName DYNAMIC = DotName.createSimple("io.apicurio.common.apps.config.Dynamic");
    private static final DotName CONFIG_PROPERTY = DotName.createSimple("org.eclipse.microprofile.config.inject.ConfigProperty");

    @BuildStep
    @Record(ExecutionTime.RUNTIME_INIT)
    void syntheticBean(DynamicPropertiesInfoRecorder recorder, BeanArchiveIndexBuildItem beanArchiveIndex,
            BuildProducer<SyntheticBeanBuildItem> syntheticBeans) {
        List<DynamicConfigPropertyDef> defs = new ArrayList<>();
        for (AnnotationInstance dyn : beanArchiveIndex.getIndex().getAnnotations(DYNAMIC)) {
            if (dyn.target().kind() != AnnotationTarget.Kind.FIELD) {
                continue;
            }
            FieldInfo field = dyn.target().asField();
            AnnotationInstance cp = field.annotation(CONFIG_PROPERTY);
            if (cp == null) {
                continue;
            }
            String name = cp.value("name").asString();
            AnnotationValue dv = cp.value("defaultValue");
            String defaultValue = dv == null ? null : dv.asString();
            Type t = field.type();
            if (t.kind() == Type.Kind.PARAMETERIZED_TYPE) { // Supplier<Boolean> etc.
                t = t.asParameterizedType().arguments().get(0);
            }
            Class<?> type;
            try {
                type = Class.forName(t.name().toString(), false, Thread.currentThread().getContextClassLoader());
            } catch (ClassNotFoundException e) {
                throw new IllegalStateException("@Dynamic property " + name + ": unknown type " + t, e);
            }
            DynamicConfigPropertyDef def = new DynamicConfigPropertyDef(name, type, defaultValue);
            AnnotationValue label = dyn.value("label");
            if (label != null) def.setLabel(label.asString());
            AnnotationValue desc = dyn.value("description");
            if (desc != null) def.setDescription(desc.asString());
            AnnotationValue req = dyn.value("requires");
            if (req != null) def.setRequires(req.asStringArray());
            defs.add(def);
        }
        syntheticBeans.produce(SyntheticBeanBuildItem.configure(DynamicConfigPropertyList.class)
                .runtimeValue(recorder.initializePropertiesInfo(defs))
                .unremovable()
                .setRuntimeInit()
                .done());
    }
}
