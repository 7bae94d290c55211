//! The `samverka.v1.Consents` service's RPCs: each wrapped in one
//! [`Call`] (span, metrics, status) around its handler.

use samverka_proto::v1::{
    Consent, ConsentReceipt, GetConsentRequest, GrantConsentRequest, ListConsentsRequest,
    ListConsentsResponse, RevokeConsentRequest, consents_server,
};
use tonic::{Request, Response, Status};

use super::{ConsentsService, watch};
use crate::service::rpc::{Call, Method};

#[tonic::async_trait]
impl consents_server::Consents for ConsentsService {
    async fn grant(
        &self,
        request: Request<GrantConsentRequest>,
    ) -> Result<Response<ConsentReceipt>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::ConsentsGrant,
            request.metadata(),
        );
        call.run(Box::pin(Self::grant(self, request, &call))).await
    }

    async fn revoke(
        &self,
        request: Request<RevokeConsentRequest>,
    ) -> Result<Response<ConsentReceipt>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::ConsentsRevoke,
            request.metadata(),
        );
        call.run(Box::pin(Self::revoke(self, request, &call))).await
    }

    async fn get(&self, request: Request<GetConsentRequest>) -> Result<Response<Consent>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::ConsentsGet,
            request.metadata(),
        );
        call.run(Box::pin(Self::get(self, request, &call))).await
    }

    async fn list(
        &self,
        request: Request<ListConsentsRequest>,
    ) -> Result<Response<ListConsentsResponse>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::ConsentsList,
            request.metadata(),
        );
        call.run(Box::pin(Self::list(self, request, &call))).await
    }
    async fn request_consent(
        &self,
        request: Request<samverka_proto::v1::RequestConsentRequest>,
    ) -> Result<Response<Consent>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::ConsentsRequest,
            request.metadata(),
        );
        call.run(Box::pin(Self::request_consent(self, request, &call)))
            .await
    }

    async fn approve_consent(
        &self,
        request: Request<samverka_proto::v1::ApproveConsentRequest>,
    ) -> Result<Response<ConsentReceipt>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::ConsentsApprove,
            request.metadata(),
        );
        call.run(Box::pin(Self::approve(self, request, &call)))
            .await
    }

    async fn reject_consent(
        &self,
        request: Request<samverka_proto::v1::RejectConsentRequest>,
    ) -> Result<Response<ConsentReceipt>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::ConsentsReject,
            request.metadata(),
        );
        call.run(Box::pin(Self::reject(self, request, &call))).await
    }

    async fn pause_consent(
        &self,
        request: Request<samverka_proto::v1::PauseConsentRequest>,
    ) -> Result<Response<ConsentReceipt>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::ConsentsPause,
            request.metadata(),
        );
        call.run(Box::pin(Self::pause(self, request, &call))).await
    }

    async fn resume_consent(
        &self,
        request: Request<samverka_proto::v1::ResumeConsentRequest>,
    ) -> Result<Response<ConsentReceipt>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::ConsentsResume,
            request.metadata(),
        );
        call.run(Box::pin(Self::resume(self, request, &call))).await
    }

    type WatchConsentsStream = watch::EventStream;

    async fn watch_consents(
        &self,
        request: Request<samverka_proto::v1::WatchConsentsRequest>,
    ) -> Result<Response<Self::WatchConsentsStream>, Status> {
        let call = Call::new(
            &self.gateway.metrics,
            Method::ConsentsWatch,
            request.metadata(),
        );
        call.run(Box::pin(Self::watch(self, request, &call))).await
    }
}
